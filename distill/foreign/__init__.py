"""Published training recipes read as they are: open-r1 / TRL SFT YAMLs and LLaMA-Factory
training YAMLs, turned into distill's own recipe mapping (a student card inline plus a `train`
section). A file that is not supervised fine-tuning (DPO, GRPO, an inference or export file) is
refused first, in one line naming what it is.

    detect.py       which tool wrote a file; the stage check
    keys.py         the arguments each tool defines (published_keys.json), and the error lines
    common.py       Trainer arguments, batch order, the settings with no effect here
    openr1.py       open-r1 / TRL / alignment-handbook recipes
    llamafactory.py LLaMA-Factory recipes
    lfdata.py       LLaMA-Factory's dataset_info.json names as train.data entries
"""

from .detect import LLAMAFACTORY, OPENR1, detect, is_distill_key
from .llamafactory import from_llamafactory
from .openr1 import from_trl

__all__ = ["LLAMAFACTORY", "OPENR1", "detect", "from_llamafactory", "from_trl", "is_distill_key"]
