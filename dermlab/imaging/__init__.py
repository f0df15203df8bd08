"""Image-level processing outside the networks: mask post-processing and test-time augmentation."""
