"""Learned parts of the backend (torch): the expression encoder, its training data and its training.

Nothing here is imported by the core package at start-up: :mod:`likeness.learned.runtime` loads torch only
when an encoder is first used, so the backend runs (landmark fit only) where torch is not installed.
"""
