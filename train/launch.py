"""accelerate configs for multi-GPU training: DDP (one model copy per GPU) and FSDP (sharded parameters).

The files are what ``accelerate config`` would write for one machine; ``accelerate launch --config_file F -m
curate.cli train RUN`` then runs ``gristmill train`` once per process, each reading the same curated dataset.
"""

from __future__ import annotations

from typing import Any

import yaml


def accelerate_config(strategy: str, processes: int, mixed_precision: str = "bf16") -> dict[str, Any]:
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU" if strategy == "ddp" else "FSDP",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": processes,
        "mixed_precision": mixed_precision,
        "main_training_function": "main",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if strategy == "fsdp":
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
        }
    return config


def accelerate_yaml(strategy: str, processes: int) -> str:
    return yaml.safe_dump(accelerate_config(strategy, processes), sort_keys=False)
