"""Photos and people: datasets, detection and alignment onto the canvas, splits, identity banks."""
