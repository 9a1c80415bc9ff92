"""MediaPipe's documented Python usage of the image segmenter, as runnable scripts that import ``mediapipe``.

Each script makes exactly the calls, with exactly the import lines, of MediaPipe's published examples: the
Python guide for the Image Segmenter task (ai.google.dev/edge/mediapipe/solutions/vision/image_segmenter/python:
IMAGE, VIDEO and LIVE_STREAM snippets), the sample notebook (mediapipe-samples
examples/image_segmentation/python/image_segmentation.ipynb: solid-colour mask and background blur), and the
legacy Selfie Segmentation solution's page (docs/solutions/selfie_segmentation.md: static images and the frame
loop). Where the originals download files, open a webcam or display windows, these take paths from ``sys.argv``,
read frames from an image and save ``.npy`` results. ``tests/tasks`` runs them after ``sed 's/mediapipe/segkit/'``
on the import lines; ``tests/compat`` runs them unmodified through ``python -m segkit.compat``.
"""

from __future__ import annotations

# argv: model, image, output folder
GUIDE_IMAGE = """
import sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks import python
from mediapipe.tasks.python import vision

model_path, image_path, out = sys.argv[1:4]
BaseOptions = mp.tasks.BaseOptions
ImageSegmenter = mp.tasks.vision.ImageSegmenter
ImageSegmenterOptions = mp.tasks.vision.ImageSegmenterOptions
VisionRunningMode = mp.tasks.vision.RunningMode

options = ImageSegmenterOptions(
    base_options=BaseOptions(model_asset_path=model_path),
    running_mode=VisionRunningMode.IMAGE,
    output_category_mask=True)
with ImageSegmenter.create_from_options(options) as segmenter:
    mp_image = mp.Image.create_from_file(image_path)
    segmented_masks = segmenter.segment(mp_image)
    np.save(out + "/category.npy", segmented_masks.category_mask.numpy_view())
    np.save(out + "/confidence0.npy", segmented_masks.confidence_masks[0].numpy_view())
"""

# argv: model, image, output folder
GUIDE_VIDEO = """
import sys
import numpy as np
from PIL import Image
import mediapipe as mp
from mediapipe.tasks import python
from mediapipe.tasks.python import vision

model_path, image_path, out = sys.argv[1:4]
BaseOptions = mp.tasks.BaseOptions
ImageSegmenter = mp.tasks.vision.ImageSegmenter
ImageSegmenterOptions = mp.tasks.vision.ImageSegmenterOptions
VisionRunningMode = mp.tasks.vision.RunningMode

options = ImageSegmenterOptions(
    base_options=BaseOptions(model_asset_path=model_path),
    running_mode=VisionRunningMode.VIDEO,
    output_category_mask=True)
frame = np.asarray(Image.open(image_path).convert("RGB"))
frames = [frame, frame[:, ::-1].copy(), frame]
masks = []
with ImageSegmenter.create_from_options(options) as segmenter:
    for i, numpy_frame in enumerate(frames):
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=numpy_frame)
        frame_timestamp_ms = i * 33
        segmented_masks = segmenter.segment_for_video(mp_image, frame_timestamp_ms)
        masks.append(segmented_masks.category_mask.numpy_view().copy())
np.save(out + "/video.npy", np.stack(masks))
"""

# argv: model, image, output folder
GUIDE_LIVE_STREAM = """
import sys
import threading
import numpy as np
from PIL import Image
import mediapipe as mp
from mediapipe.tasks import python
from mediapipe.tasks.python import vision

model_path, image_path, out = sys.argv[1:4]
BaseOptions = mp.tasks.BaseOptions
ImageSegmenter = mp.tasks.vision.ImageSegmenter
ImageSegmenterOptions = mp.tasks.vision.ImageSegmenterOptions
VisionRunningMode = mp.tasks.vision.RunningMode
timestamps = []
done = threading.Event()

def print_result(result, output_image, timestamp_ms):
    print('segmented masks size: {}'.format(len(result.confidence_masks)))
    timestamps.append(timestamp_ms)
    done.set()

options = ImageSegmenterOptions(
    base_options=BaseOptions(model_asset_path=model_path),
    running_mode=VisionRunningMode.LIVE_STREAM,
    result_callback=print_result)
frame = np.asarray(Image.open(image_path).convert("RGB"))
with ImageSegmenter.create_from_options(options) as segmenter:
    for frame_timestamp_ms in (0, 40, 80):
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=frame)
        segmenter.segment_async(mp_image, frame_timestamp_ms)
        done.wait(5)
        done.clear()
np.save(out + "/timestamps.npy", np.array(timestamps))
"""

# argv: model (DeepLab-v3), image, output folder
SAMPLE_NOTEBOOK = """
import sys
import cv2
import numpy as np
import mediapipe as mp
from mediapipe.tasks import python
from mediapipe.tasks.python import vision

model_path, image_path, out = sys.argv[1:4]
IMAGE_FILENAMES = [image_path]
BG_COLOR = (192, 192, 192) # gray
MASK_COLOR = (255, 255, 255) # white

base_options = python.BaseOptions(model_asset_path=model_path)
options = vision.ImageSegmenterOptions(base_options=base_options, output_category_mask=True)

with vision.ImageSegmenter.create_from_options(options) as segmenter:
    for image_file_name in IMAGE_FILENAMES:
        image = mp.Image.create_from_file(image_file_name)
        segmentation_result = segmenter.segment(image)
        category_mask = segmentation_result.category_mask
        image_data = image.numpy_view()
        fg_image = np.zeros(image_data.shape, dtype=np.uint8)
        fg_image[:] = MASK_COLOR
        bg_image = np.zeros(image_data.shape, dtype=np.uint8)
        bg_image[:] = BG_COLOR
        condition = np.stack((category_mask.numpy_view(),) * 3, axis=-1) > 0.2
        output_image = np.where(condition, fg_image, bg_image)
        np.save(out + "/solid.npy", output_image)

with python.vision.ImageSegmenter.create_from_options(options) as segmenter:
    for image_file_name in IMAGE_FILENAMES:
        image = mp.Image.create_from_file(image_file_name)
        segmentation_result = segmenter.segment(image)
        category_mask = segmentation_result.category_mask
        image_data = cv2.cvtColor(image.numpy_view(), cv2.COLOR_BGR2RGB)
        blurred_image = cv2.GaussianBlur(image_data, (55,55), 0)
        condition = np.stack((category_mask.numpy_view(),) * 3, axis=-1) > 0.1
        output_image = np.where(condition, image_data, blurred_image)
        np.save(out + "/blurred.npy", output_image)
"""

# argv: (no model: the solution picks it), image, output folder
LEGACY_SELFIE = """
import sys
import cv2
import mediapipe as mp
import numpy as np
mp_drawing = mp.solutions.drawing_utils
mp_selfie_segmentation = mp.solutions.selfie_segmentation

_, image_path, out = sys.argv[1:4]
IMAGE_FILES = [image_path]
BG_COLOR = (192, 192, 192) # gray
MASK_COLOR = (255, 255, 255) # white
with mp_selfie_segmentation.SelfieSegmentation(
    model_selection=0) as selfie_segmentation:
  for idx, file in enumerate(IMAGE_FILES):
    image = cv2.imread(file)
    image_height, image_width, _ = image.shape
    results = selfie_segmentation.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    condition = np.stack((results.segmentation_mask,) * 3, axis=-1) > 0.1
    fg_image = np.zeros(image.shape, dtype=np.uint8)
    fg_image[:] = MASK_COLOR
    bg_image = np.zeros(image.shape, dtype=np.uint8)
    bg_image[:] = BG_COLOR
    output_image = np.where(condition, fg_image, bg_image)
    cv2.imwrite(out + '/selfie_segmentation_output' + str(idx) + '.png', output_image)
    np.save(out + "/static_mask.npy", results.segmentation_mask)

frames = [cv2.imread(image_path)] * 2
with mp_selfie_segmentation.SelfieSegmentation(
    model_selection=1) as selfie_segmentation:
  bg_image = None
  for image in frames:
    image = cv2.cvtColor(cv2.flip(image, 1), cv2.COLOR_BGR2RGB)
    image.flags.writeable = False
    results = selfie_segmentation.process(image)
    image.flags.writeable = True
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    condition = np.stack(
      (results.segmentation_mask,) * 3, axis=-1) > 0.1
    if bg_image is None:
      bg_image = np.zeros(image.shape, dtype=np.uint8)
      bg_image[:] = BG_COLOR
    output_image = np.where(condition, image, bg_image)
  np.save(out + "/loop_output.npy", output_image)
"""

EXAMPLES = {
    "guide_image": GUIDE_IMAGE,
    "guide_video": GUIDE_VIDEO,
    "guide_live_stream": GUIDE_LIVE_STREAM,
    "sample_notebook": SAMPLE_NOTEBOOK,
    "legacy_selfie": LEGACY_SELFIE,
}

# example -> (model file under the shared models, or None for the legacy solution; input image)
INPUTS: dict[str, tuple[str | None, str]] = {
    "guide_image": ("selfie_segmenter.tflite", "astronaut.png"),
    "guide_video": ("selfie_segmenter_landscape.tflite", "astronaut.png"),
    "guide_live_stream": ("hair_segmenter.tflite", "astronaut.png"),
    "sample_notebook": ("deeplabv3.tflite", "astronaut.png"),
    "legacy_selfie": (None, "astronaut.png"),
}
