"""Head models: the parametric head (ICT, FLAME), its files and conversions, where landmarks and named regions
lie on it, and the geometry and cameras every stage shares.
"""
