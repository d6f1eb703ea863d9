"""DeepSDF (Park et al., CVPR 2019): auto-decoder signed distance functions, ``model=deepsdf``."""

from zoo.models.deepsdf.decoder import DeepSDFDecoder
from zoo.models.deepsdf.model import DeepSDF

__all__ = ["DeepSDF", "DeepSDFDecoder"]
