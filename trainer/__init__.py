"""moodcam trainer: the desktop side. Imports TensorFlow lazily, and edge.contracts for what it shares with the edge."""
