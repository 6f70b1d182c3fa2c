"""Publishing on the Hugging Face Hub: what a model repository holds (`model_files`, the allow list), remote-code
export (`remote_code`) and upload (`upload`).

Model cards, which every model folder gets, live one layer down in `modeling_m2f_video.model_cards`; their names
are re-exported here, where earlier releases had them.
"""

from ..model_cards import (
    OFFICIAL_WEIGHTS_LICENSE,
    YouTubeVISResults,
    build_model_card,
    paper_results,
    preset_of,
    save_model_card,
    save_pretrained_with_card,
    usage_snippet,
)
from .errors import HubError
from .model_files import MODEL_FILES, ModelFiles, select_model_files
from .remote_code import (
    HubExport,
    check_export_output,
    export_hub_folder,
    plan_hub_export,
    remote_code_config_entries,
    remote_code_file_names,
    remote_code_sources,
)
from .upload import check_repo_id, folder_warnings, push_folder, upload_plan

__all__ = [
    "MODEL_FILES",
    "OFFICIAL_WEIGHTS_LICENSE",
    "HubError",
    "HubExport",
    "ModelFiles",
    "YouTubeVISResults",
    "build_model_card",
    "check_export_output",
    "check_repo_id",
    "export_hub_folder",
    "folder_warnings",
    "paper_results",
    "plan_hub_export",
    "preset_of",
    "push_folder",
    "remote_code_config_entries",
    "remote_code_file_names",
    "remote_code_sources",
    "select_model_files",
    "save_model_card",
    "save_pretrained_with_card",
    "upload_plan",
    "usage_snippet",
]
