"""FairLin engine: audit and mitigate the fairness cost of ReLU linearization for private inference.

The notebook API, ``import fairlin_core as fl``::

    base = fl.load_checkpoint("checkpoints/digits_resnet18.safetensors")
    data = base.dataset()
    lin = fl.linearize(base, "snl", "1%", data=data, finetune_epochs=20, seed=0)
    audit = fl.audit(base, lin, data=data, split="balanced", diagnostics=["accuracy", "grad", "hessian"])
    audit.by_group, audit.summary(), audit.save("out/")
    fl.cost(lin, profile="delphi").totals      # estimated private-inference MB and seconds

Names are imported on first use (PEP 562), so ``import fairlin_core`` itself is instant and the CLI's
``--help`` never imports torch; once imported, each is the function or class itself, so ``fl.linearize?``
and ``inspect.signature(fl.audit)`` show its own parameters and docstring.

Functions are verbs and wings (subpackages) are nouns, and no name is both: ``fl.linearize``, ``fl.audit``
and ``fl.cost`` live in the wings ``fairlin_core.linearizers``, ``fairlin_core.audits`` and
``fairlin_core.costs``. (Python sets ``fairlin_core.X`` to the subpackage whenever ``fairlin_core.X`` is
first imported, so a function and a wing of one name could not both keep it.)

This package never imports streamlit; the dashboard (``app.py``, ``pages/``, ``ui/``) and the CLI
(``fairlin`` / ``python -m fairlin_core``) are thin layers over it.
"""

from __future__ import annotations

from .lazy import lazy_exports
from .version import __version__

# public name -> "module:attribute"
_EXPORTS: dict[str, str] = {
    # models in memory: checkpoints, linearization, audits
    "load_checkpoint": "fairlin_core.checkpoints:load_checkpoint",
    "Checkpoint": "fairlin_core.checkpoints:Checkpoint",
    "import_checkpoint": "fairlin_core.checkpoints.importers:import_checkpoint",
    "instrument": "fairlin_core.models.instrumentation:instrument",
    "trust_model_code": "fairlin_core.runtime:trust_model_code",
    "linearize": "fairlin_core.linearizers.checkpoint:linearize_checkpoint",
    "audit": "fairlin_core.audits.core:audit",
    "compare": "fairlin_core.audits.comparison:compare",
    "Audit": "fairlin_core.audits.core:Audit",
    "Comparison": "fairlin_core.audits.comparison:Comparison",
    "load_results": "fairlin_core.audits.results:load_results",
    "AuditResults": "fairlin_core.audits.results:AuditResults",
    # private-inference cost
    "cost": "fairlin_core.costs.pricing:cost",
    "CostEstimate": "fairlin_core.costs.pricing:CostEstimate",
    "list_profiles": "fairlin_core.costs.profiles:list_profiles",
    "load_profile": "fairlin_core.costs.profiles:load_profile",
    # data and models
    "load_dataset": "fairlin_core.data:load_dataset",
    "list_datasets": "fairlin_core.data:list_datasets",
    "DatasetBundle": "fairlin_core.data:DatasetBundle",
    "build_model": "fairlin_core.models:build_model",
    "resolve_spec": "fairlin_core.models:resolve_spec",
    "ModelSpec": "fairlin_core.models:ModelSpec",
    "relu_count": "fairlin_core.models:relu_count",
    "site_table": "fairlin_core.models:site_table",
    "train_base": "fairlin_core.train:train_base",
    # the 2D teaching experiment
    "run_toy": "fairlin_core.toy:run_toy",
    "ToyConfig": "fairlin_core.toy:ToyConfig",
    # configuration classes
    "LinearizeRecipe": "fairlin_core.linearizers:LinearizeRecipe",
    "LinearizeOptions": "fairlin_core.linearizers:LinearizeOptions",
    "SNLConfig": "fairlin_core.linearizers:SNLConfig",
    "DeepReduceConfig": "fairlin_core.linearizers:DeepReduceConfig",
    "FinetuneConfig": "fairlin_core.finetune:FinetuneConfig",
    "MitigationConfig": "fairlin_core.finetune:MitigationConfig",
    "JobConfig": "fairlin_core.jobs:JobConfig",
    "JobManager": "fairlin_core.jobs:JobManager",
    # errors
    "FairLinError": "fairlin_core.errors:FairLinError",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
