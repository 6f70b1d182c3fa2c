"""The output names of `predict`: one per video, distinct by construction, whatever the input paths."""

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modeling_m2f_video.batch_prediction import unique_names

# Path parts over a small alphabet, so that stems, case-only differences and `_<n>` look-alikes repeat often.
PARTS = st.text(alphabet="aA_01.", max_size=4)
PATHS = st.lists(PARTS, min_size=1, max_size=3).map("/".join)
SUFFIXES = st.sampled_from(["", ".mp4", ".webm", ".MP4"])
VIDEOS = st.one_of(
    st.builds(lambda path, suffix: path + suffix, PATHS, SUFFIXES),
    st.builds(Path, PATHS),
    st.builds(object),  # an in-memory video: named `video_<index>`
)


def test_the_names_of_the_issue_example_are_distinct():
    assert unique_names(["a.mp4", "x/a.mp4", "a_0.mp4"]) == ["a", "a_1", "a_0"]
    assert unique_names(["a.mp4", "x/a.mp4", "a_1.mp4"]) == ["a", "a_2", "a_1"]
    assert unique_names(["clips/A.mp4", "a.webm", object(), "video_2.mp4"]) == ["A", "a_1", "video_2", "video_2_1"]


@given(st.lists(VIDEOS, max_size=12))
def test_any_inputs_give_distinct_file_names(videos):
    names = unique_names(videos)
    assert len(names) == len(videos)
    assert len({name.casefold() for name in names}) == len(names)  # distinct also where case is ignored
    assert all(name and "/" not in name for name in names)
    assert unique_names(videos) == names


def own_name(video, index: int) -> str:
    """What a video is called before names are made distinct."""
    if isinstance(video, (str, Path)):
        return Path(video).stem or f"video_{index}"
    return f"video_{index}"


@given(st.lists(VIDEOS, max_size=12))
def test_the_first_video_of_each_name_keeps_it(videos):
    names = unique_names(videos)
    first = {}
    for index, video in enumerate(videos):
        first.setdefault(own_name(video, index).casefold(), index)
    for index in first.values():
        assert names[index] == own_name(videos[index], index)
