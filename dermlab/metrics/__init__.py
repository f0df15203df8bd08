"""Every metric's one definition (classification, segmentation) and the torchmetrics adapter runs log them with."""
