"""The ISIC challenges' own files and numbers: ground truths, submissions, the official scorers and their bootstrap."""
