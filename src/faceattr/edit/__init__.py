"""Editing a face: S31 invert, S32 search, S33 transfer, detection and paste-back, the pipeline and its files."""
