"""From photos and video to a fitted head: reading photos, landmarks, segmentation, the fit of identity, pose
and expression (with its evidence and checks), gaze, and video tracking.
"""
