"""Models & data: shipped and user checkpoints, group sizes per split, checkpoint upload and import, base training."""

import streamlit as st

from fairlin_core.checkpoints import MAX_UPLOAD_BYTES, accept_upload
from ui.datasets import dataset_facts
from ui.errors import show_error
from fairlin_core.viz import group_accuracy_figure, group_sizes_figure
from fairlin_core.models import MODELS
from ui.checkpoint_views import (IMPORT_TYPES, NOT_SUPPORTED, accuracy_on_default_split, checkpoint_groups_overview,
                                  checkpoints_overview, dataset_group_style, import_architectures,
                                  import_formats_overview, import_upload, submit_base_training, user_checkpoint_dir)
from ui.jobs_panel import jobs_panel, manager
from ui.shell import require_shell
from ui.state import current

require_shell()


st.title("Models & data")
choice = current()
data_root, dataset, group = choice.data_root, choice.dataset, choice.group
user_dir = user_checkpoint_dir()

st.header("Checkpoints")
table = checkpoints_overview(user_dir)
st.dataframe(table.drop(columns=["path"]), hide_index=True, width="stretch",
             column_config={"overall_accuracy": st.column_config.NumberColumn(format="%.3f"),
                            "worst_group_accuracy": st.column_config.NumberColumn(format="%.3f")})
st.caption(f"User checkpoints live in `{user_dir}`.")
try:
    sizes, sizes_error = dataset_facts(dataset, data_root, group)[0], None
except Exception as error:  # shown under "Group sizes" below; the charts then draw no minority
    sizes, sizes_error = None, error
groups = checkpoint_groups_overview(user_dir)
groups = groups[groups["dataset"] == dataset]
if groups.empty:
    st.info(f"No checkpoint with recorded per-group accuracy on {dataset}.")
else:
    split, shown = accuracy_on_default_split(groups, sizes)
    st.plotly_chart(group_accuracy_figure(shown, f"{dataset}: accuracy per group and checkpoint · {split} split",
                                          dataset_group_style(sizes, shown["group"].tolist())),
                    width="stretch", key="models_data.group_accuracy")

st.header(f"Group sizes: {dataset} by {group}")
if sizes_error is not None:
    show_error(sizes_error)
else:
    st.plotly_chart(group_sizes_figure(sizes, f"{dataset}: examples per {group}, every split",
                                       dataset_group_style(sizes)), width="stretch", key="models_data.group_sizes")

st.header("Upload a checkpoint")
st.caption(f"A safetensors weights file and its FairLin JSON sidecar (at most {MAX_UPLOAD_BYTES // 2**20} MiB). "
           "Both are validated before anything is stored; pickles and torch.save files are refused.")
with st.form("upload"):  # files stay chosen after a failed validation
    weights = st.file_uploader("Weights (.safetensors)", type=["safetensors"], key="models_data.upload_weights")
    sidecar = st.file_uploader("Sidecar (.json)", type=["json"], key="models_data.upload_sidecar")
    if st.form_submit_button("Validate and add", icon=":material/upload:"):
        if weights is None or sidecar is None:
            st.error("Choose both files: NAME.safetensors and its JSON sidecar.")
        else:
            try:
                path = accept_upload(weights.name, weights.getvalue(), sidecar.getvalue(), user_dir)
            except Exception as error:  # every error: one readable message, never a traceback
                show_error(error)
            else:
                st.success(f"Added {path.stem}; it is now selectable as base checkpoint.")

st.header("Import a checkpoint")
st.caption("A checkpoint from elsewhere (SNL, DeepReDuce, torchvision, or a zoo architecture's plain state dict, "
           "e.g. a .safetensors without sidecar: its sidecar is written from this form). Read with "
           "torch.load(weights_only=True) or safetensors and validated before anything is stored.")
st.dataframe(import_formats_overview(), hide_index=True, width="stretch")
st.caption(NOT_SUPPORTED)
fmt = st.selectbox("Format", list(import_formats_overview()["format"]), key="models_data.import_format")
with st.form("import"):
    source = st.file_uploader("Checkpoint file", type=IMPORT_TYPES, key="models_data.import_file")
    left, middle, right = st.columns(3)
    arch = left.selectbox("Architecture", import_architectures(fmt), key="models_data.import_arch")
    width = middle.number_input("Width (0 = read from the file)", 0, 512, 0, key="models_data.import_width")
    right.text_input("Dataset", dataset, disabled=True, key="models_data.import_dataset",
                     help="The sidebar's dataset: the data the model was trained on.")
    if st.form_submit_button("Validate and import", icon=":material/input:"):
        if source is None:
            st.error("Choose a checkpoint file first.")
        else:
            try:
                path = import_upload(source.name, source.getvalue(), fmt, arch, dataset, user_dir, width=int(width),
                                     data_root=data_root)
            except Exception as error:  # every error: one readable message, never a traceback
                show_error(error)
            else:
                st.success(f"Imported {path.stem}; it is now selectable as a checkpoint.")

st.header("Train a base model")
with st.form("train_base"):
    left, middle, right = st.columns(3)
    model = left.selectbox("Architecture", sorted(MODELS), index=sorted(MODELS).index("resnet18"),
                           key="models_data.train_model")
    width = middle.number_input("Width", 2, 64, 16, key="models_data.train_width",
                                help="Channel width of the first stage.")
    epochs = right.number_input("Epochs", 1, 500, 5, key="models_data.train_epochs")
    seed = left.number_input("Seed", 0, 10_000, 0, key="models_data.train_seed")
    name = middle.text_input("Checkpoint name", "", key="models_data.train_name",
                             placeholder=f"{dataset}_<model>_w<width>_s<seed>")
    if st.form_submit_button(f"Train on {dataset}", icon=":material/play_arrow:"):
        try:
            submit_base_training(manager(), dataset, model, width=int(width), epochs=int(epochs), seed=int(seed),
                                 name=name.strip() or None, data_root=data_root)
        except Exception as error:  # every error: one readable message, never a traceback
            show_error(error)
        else:
            st.success("Training queued; progress below (and in the sidebar's jobs panel).")

jobs_panel(limit=10, kind="train-base")
