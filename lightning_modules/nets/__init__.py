"""Plain nn.Modules and functions, free of Lightning. Importing the package registers the suite's
timm models (``arl_cnn14``, ``arl_cnn50``, ``resnet14``, ``seresnet14``, ``ran14``, ``ran50``) so they
are created by name."""

from lightning_modules.nets import arl, ran  # noqa: F401  (registers models with timm)
