"""The product around the stages: the reconstruct job, the bundle writer, the command line, the warm server and
its jobs, batches (local and Ray), model installation, fault injection and memory tuning.
"""
