"""Rebuild the small byte-level BPE tokenizer bundled for the tiny and synth presets (offline, deterministic)."""

import itertools
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

OUT = Path(__file__).resolve().parents[1] / "reasonbrain" / "presets" / "tokenizer"
TEMPLATES = [
    "What would happen if the {o} were {a}?", "Imagine the {o} is {a}.", "Suppose the {o} were {a}.",
    "What if the {o} was {a}?", "Picture the {o} after being {a}.", "If the {o} were {a}, how would it look?",
    "Envision what the {o} looks like when {a}.", "Consider the {o} {a} for a long time.",
]
OBJECTS = ["ice cube", "apple", "banana", "ball", "glass", "candle", "paper", "plant", "tree", "balloon", "sky",
           "cube on the left", "red apple", "blue ball", "egg", "snowman", "cat", "mirror", "bread", "leaf",
           "sun", "moon", "seesaw", "box", "cup", "bottle", "flower", "pumpkin", "cookie", "lamp"]
ACTIONS = ["left in the sun", "dropped on the floor", "knocked off the table", "held near a flame",
           "left for weeks", "not watered", "let go", "heated", "frozen overnight", "pushed off the edge",
           "forgotten outside", "burnt", "melted", "broken", "wilted", "rotten", "deflated", "tilted", "evening"]
EXTRA = ("the a an of in on at to with and or is was were be been it its this that left right centre center "
         "middle top bottom red green blue yellow orange purple white black brown pink gray grey small large big "
         "heavy light hot cold day night sunset winter summer autumn spring snow rain water puddle shards ash "
         "USER ASSISTANT Instruction object none background region reasoning answer name box").split()


def corpus():
    for t, o, a in itertools.product(TEMPLATES, OBJECTS, ACTIONS):
        yield t.format(o=o, a=a)
    yield " ".join(EXTRA)


def main() -> int:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<obj>", "</obj>"]
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=["<image>", "<obj>", "</obj>"])
    fast.model_max_length = 512
    fast.save_pretrained(OUT)
    print(f"wrote {OUT} (vocab {len(fast)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
