from __future__ import annotations

import os

import torch

# Tests run offline and on two CPU cores: never reach a model hub, and keep torch from oversubscribing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))
