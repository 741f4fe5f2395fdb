"""Background jobs and the persistent run store, shared by the dashboard and the CLI.

``JobConfig`` describes a linearize run and ``TrainBaseConfig`` a base-model training run; ``get_manager(store_root).submit(config)`` queues it (or returns the
identical run already done or in flight); ``RunStore`` reads runs back with their tables, ``collect_from_store`` the done runs of one checkpoint as audit results.
"""

from .config import TRAIN_BASE, JobConfig, TrainBaseConfig, config_from_dict
from .executor import Executor, ExecutorJob, LocalThreadExecutor, execute
from .manager import EXECUTORS, JobManager, JobStatus, get_manager, make_executor
from .ray_executor import ADDRESS_ENV, RayExecutor
from .results import collect_from_store
from .store import ACTIVE, STATUSES, Run, RunStore, resolve_store_root, user_checkpoint_dir

__all__ = ["TRAIN_BASE", "JobConfig", "TrainBaseConfig", "config_from_dict", "user_checkpoint_dir", "Executor",
           "ExecutorJob", "LocalThreadExecutor", "ADDRESS_ENV", "RayExecutor", "execute", "JobManager",
           "collect_from_store", "JobStatus", "EXECUTORS", "make_executor", "get_manager", "ACTIVE", "STATUSES", "Run",
           "RunStore", "resolve_store_root"]
