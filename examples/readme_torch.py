import torch
from torch import nn

import varprop.torch as vt

torch.manual_seed(0)
model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(256, 256), nn.SiLU())], nn.Linear(256, 10))
report = vt.init_model(model, (512, 256), calibrate="gaussian", generator=torch.Generator().manual_seed(0))
print(report)
