"""FaceNet (Inception-ResNet-v1) as converted by facenet-pytorch: VGGFace2 and CASIA-WebFace checkpoints.

Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering", CVPR 2015; these are David
Sandberg's TensorFlow models 20180402-114759 (VGGFace2, 99.65% LFW) and 20180408-102900 (CASIA-WebFace, 99.05%)
ported to torch by facenet-pytorch (``InceptionResnetV1``, MIT). Input: 160 x 160 RGB, fixed standardisation
``(x * 255 - 127.5) / 128``; output 512-d, unit norm. The checkpoints are not in the wheel (they download from
GitHub releases at run time, which fails offline): the user brings the ``.pt`` state dict, loaded with
``torch.load(weights_only=True)``; its ``logits.*`` classifier is dropped.

Framing: the crop facenet-pytorch's MTCNN makes with ``image_size=160, margin=32`` (the detector box grown by 32
output pixels, as in Sandberg's LFW evaluation), as a five-point template: the mean position of the MTCNN
landmarks in that crop over 120 LFW photos (one random photo of 120 random identities, seed 0). The box crop is
not a similarity of the landmarks (it follows the box, and squeezes non-square boxes); the template keeps the
average geometry.
"""

from __future__ import annotations

import torch

from bench.canvas import Framing
from bench.registry import TARGETS
from bench.user_weights import load_into, load_state_dict
from bench.weights import WeightSpec
from targets._checkpoint import CheckpointTarget

# Left eye, right eye, nose, mouth corners in the 160 px MTCNN crop with margin 32 (see module docstring).
MTCNN_160_MARGIN32 = ((52.88, 66.19), (110.64, 65.25), (82.15, 91.68), (56.63, 112.88), (108.65, 111.99))

# Where facenet-pytorch itself downloads them from (its models/inception_resnet_v1.py).
_RELEASES = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"


class FaceNet(CheckpointTarget):
    embedding_dim = 512
    framing = Framing(160, MTCNN_160_MARGIN32)
    preprocessing = "160 MTCNN crop (margin 32), RGB, (x*255-127.5)/128"

    @classmethod
    def runtime_available(cls) -> tuple[bool, str | None]:
        try:
            import facenet_pytorch  # noqa: F401
        except ImportError as exc:
            return False, f"facenet-pytorch is not installed ({exc}); pip install facenet-pytorch==2.5.3"
        return True, None

    def build_network(self) -> torch.nn.Module:
        from facenet_pytorch import InceptionResnetV1

        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            net = InceptionResnetV1(pretrained=None, classify=False)
        path = self.weight_file()
        load_into(net, load_state_dict(path, self.name), path, self.name, ignore_prefixes=("logits.",))
        return net

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        return (crops * 255.0 - 127.5) / 128.0


@TARGETS.register("facenet-vggface2")
class FaceNetVGGFace2(FaceNet):
    weights = (
        WeightSpec(
            name="facenet-vggface2",
            filename="20180402-114759-vggface2.pt",
            sha256="",
            source="path",
            url=_RELEASES + "20180402-114759-vggface2.pt",
            license="MIT (facenet-pytorch port); trained on VGGFace2",
        ),
    )


@TARGETS.register("facenet-casia")
class FaceNetCasia(FaceNet):
    weights = (
        WeightSpec(
            name="facenet-casia",
            filename="20180408-102900-casia-webface.pt",
            sha256="",
            source="path",
            url=_RELEASES + "20180408-102900-casia-webface.pt",
            license="MIT (facenet-pytorch port); trained on CASIA-WebFace",
        ),
    )
