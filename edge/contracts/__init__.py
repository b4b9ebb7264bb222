"""The contracts the trainer and the edge share: labels, the face crop, the model file."""
