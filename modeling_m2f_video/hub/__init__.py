"""Publishing on the Hugging Face Hub: remote-code export (`remote_code`) and upload (`upload`).

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
from .remote_code import HubError, export_hub_folder, remote_code_config_entries, remote_code_sources
from .upload import check_repo_id, folder_warnings, push_folder, upload_plan

__all__ = [
    "OFFICIAL_WEIGHTS_LICENSE",
    "HubError",
    "YouTubeVISResults",
    "build_model_card",
    "check_repo_id",
    "export_hub_folder",
    "folder_warnings",
    "paper_results",
    "preset_of",
    "push_folder",
    "remote_code_config_entries",
    "remote_code_sources",
    "save_model_card",
    "save_pretrained_with_card",
    "upload_plan",
    "usage_snippet",
]
