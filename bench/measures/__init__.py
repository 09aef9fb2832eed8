"""What is measured: PSR, image quality, LPIPS, the metric registry, bootstrap ranking."""
