"""import-torch factories that do everything but return a module."""
import os
import sys


def loops():
    while True:
        pass


def exits_0():
    sys.exit(0)


def exits_3():
    sys.exit(3)


def os_exits_0():
    os._exit(0)


def bfloat16():
    import torch
    return torch.nn.Sequential(torch.nn.Linear(2, 2)).to(torch.bfloat16)


def meta_device():
    import torch
    return torch.nn.Sequential(torch.nn.Linear(2, 2, device="meta"))


def good():
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LeakyReLU(0.2), torch.nn.Linear(3, 1)).double()
