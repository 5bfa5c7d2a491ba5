"""The array vocabulary used across visionserve's signatures."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

#: An image as OpenCV holds it: ``(H, W, 3) uint8`` in BGR order.
BGRImage: TypeAlias = npt.NDArray[np.uint8]
#: A float32 array of any shape (boxes, scores, network tensors).
FloatArray: TypeAlias = npt.NDArray[np.float32]
#: An int32 array (class ids, tracker ids).
IntArray: TypeAlias = npt.NDArray[np.int32]
#: A boolean array (a mask rasterised at image resolution).
BoolArray: TypeAlias = npt.NDArray[np.bool_]
#: A uint8 array that is not an image (mask bitmaps as 0-255 probabilities, quantised tensors).
UInt8Array: TypeAlias = npt.NDArray[np.uint8]
#: Any numpy array (model inputs and outputs of unknown dtype).
AnyArray: TypeAlias = npt.NDArray[np.generic]
