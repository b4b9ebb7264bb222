"""moodcam edge: the Raspberry Pi runtime (numpy, dlib, a TFLite runtime; never TensorFlow)."""
__version__ = "0.1.0"
