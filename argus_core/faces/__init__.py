"""Faces: the detection → keypoints → alignment → descriptor pipeline, and the galleries searched with it."""
