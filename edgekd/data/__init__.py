"""Data sets: loading, splitting, preprocessing. See edgekd.data.datasets."""
