"""moodcam trainer: the desktop side. Imports TensorFlow lazily, and edge.preprocess for crops."""
