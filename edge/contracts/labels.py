"""The canonical emotion labels, in FER2013 order (index 0..6).

Both the trainer and the edge import this; a model's JSON sidecar also carries its own
label list, and the edge refuses a model whose labels are not these, in this order.
"""
import re

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
# What a face is logged and printed as instead of a label when its confidence is below
# classifier.min_confidence: not one of LABELS, never a training label.
UNCERTAIN = "uncertain"

# Words that name an emotion in folder names and search phrases ("Disgusted+Human+Faces").
_WORD_TO_LABEL = {
    "angry": "angry", "anger": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "smiling": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "surprising": "surprise",
    "neutral": "neutral", "calm": "neutral",
}


def label_from_name(name: str) -> str | None:
    """The emotion named by a folder name or search phrase, or None when it names none.

    >>> label_from_name("Disgusted+Human+Faces")
    'disgust'
    """
    for word in re.split(r"[^a-z]+", name.lower()):
        if word in _WORD_TO_LABEL:
            return _WORD_TO_LABEL[word]
    return None
