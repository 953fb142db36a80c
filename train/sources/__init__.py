"""Converters from public person datasets, as their publishers ship them, to the COCO person
format `train/` reads (see DATASETS.md), and the writer they share."""
