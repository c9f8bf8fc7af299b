"""A richer instruction language for the synth world: how people phrase hypothetical edits, beyond the templates.

``rephrase(record_like, rng)`` writes one instruction for a sample in a random *family*:

* ``question`` / ``statement``: a frame around a clause ("how about if {ref} {cond}", "so {ref} {cond}. now what?"),
  with the transformation's own conditions or their paraphrases (``CONDITION_PARAPHRASES``);
* ``command``: an imperative ("leave {ref} in the hot sun for an hour", "light {ref}");
* ``outcome``: a bare outcome ("{name} melted", "night");
* ``story``: the transformation's narratives (story category) and their paraphrases (``STORY_PARAPHRASES``), with
  a frame or none; story transformations whose outcome is their own also take the other families;

then, independently: synonyms and descriptions for the object (``KIND_DESCRIPTIONS``), scene-level references for
the sky ("this place", "the view", "here"), elision ("it") when the object is the only one of its name, politeness
and filler, and case, punctuation and typo noise.

Families listed in ``HELDOUT_FAMILIES`` (frames, and the last paraphrase of each list) are never used by
``rephrase(..., split="train")``; the test split's rephrasings use only them, so generalisation is measured on
wording the model never read. The hand-written free-form set (``benchmarks/freeform``) is separate and never used
here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from types import MappingProxyType

from reasonbrain.synthworld.world import (
    KIND_DESCRIPTIONS,
    KINDS,
    POSITION_PHRASES,
    SKY_REFERENCES,
    TRANSFORMATIONS_BY_ID,
)

# clause paraphrases ("if {ref} <clause>"); the LAST one of each list is held out for the test split
CONDITION_PARAPHRASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ice_melt": ("baked in strong sunshine for a long while", "spent a sweltering hour outdoors",
                 "was left by a sunny window all afternoon", "sat under the summer sun for ages"),
    "ice_soften": ("was out of the freezer for a short while", "sat on the counter for a moment",
                   "warmed up for a few minutes", "stood in a warm kitchen briefly"),
    "ice_finish": ("kept on melting for a long time", "was left to finish melting",
                   "stayed out until lunch", "melted the rest of the way"),
    "candle_burn": ("burned through the whole night", "was never blown out", "kept its flame going until dawn",
                    "burned for hours and hours"),
    "glass_tip": ("got knocked onto its side", "toppled over", "tipped sideways", "fell over and spilled"),
    "ball_drop": ("slipped out of the hand", "was released", "was no longer held up", "fell from the hand"),
    "ball_kick": ("got a big kick", "was booted upward", "was kicked into the air", "bounced up high"),
    "seesaw_left": ("was released and allowed to tip", "was let go", "settled under the rock's weight",
                    "was free to move"),
    "seesaw_right": ("was released and allowed to tip", "was let go", "settled under the rock's weight",
                     "was free to move"),
    "snowman_melt": ("had a warm spring day", "stood through a hot sunny day", "melted in the spring heat",
                     "faced a whole day of warm weather"),
    "snowman_soften": ("got a short spell of gentle sun", "warmed for about an hour", "softened in mild sun",
                       "had an hour of soft sunshine"),
    "snowman_finish": ("kept melting all week", "had another sunny week", "melted the rest of the way",
                       "stayed out in the sun for days"),
    "ice_cream_melt": ("sat out in the heat", "was left in strong sunshine", "melted on a hot afternoon",
                       "spent half an hour in the heat"),
    "puddle_dry": ("dried out in the sun", "evaporated over the afternoon", "had hours to dry",
                   "was left to dry up"),
    "banana_ripen": ("ripened for a few days", "sat for several days", "was left to ripen",
                     "spent a few days on the counter"),
    "banana_spot": ("sat around for a week", "aged for about seven days", "got a week older",
                    "was left for seven days"),
    "banana_rot": ("was forgotten for weeks", "sat in the bowl for almost a month", "was left to rot",
                   "went untouched for three weeks"),
    "banana_spoil": ("was left for a couple more weeks", "kept ageing for two more weeks", "went off completely",
                     "was ignored for another two weeks"),
    "apple_rot": ("was forgotten for weeks", "sat untouched for a month", "was left to rot",
                  "went bad over several weeks"),
    "plant_bloom": ("got plenty of spring sunshine", "was looked after all spring", "grew through the spring",
                    "had a few good weeks of spring"),
    "tree_autumn": ("lived into the autumn", "was seen in the fall", "went through early autumn",
                    "made it to October"),
    "tree_winter": ("went into deep winter", "was seen after the first snow", "lived through the winter storms",
                    "made it to midwinter"),
    "bread_mould": ("was forgotten for weeks", "sat in a damp bag for a while", "went stale and mouldy",
                    "was left in the bread bin for a month"),
    "bucket_rust": ("was left out in the weather for a year", "stood in the rain for months",
                    "sat outside through a wet year", "weathered outdoors for a long time"),
    "sky_sunset": ("turned to evening", "reached sunset", "was seen at sundown", "got later in the day"),
    "sky_night": ("went on into the night", "got dark", "was seen once night fell", "grew fully dark"),
    "sky_midnight": ("turned to night", "was seen in the middle of the night", "got dark and starry",
                     "was seen late at night"),
    "sky_snow": ("got covered in snow", "went through a snowstorm", "turned wintry and snowy",
                 "had a heavy snowfall"),
    "candle_light": ("was lit", "had its wick set alight", "caught a flame", "was lit with a lighter"),
    "glass_break": ("hit the ground and smashed", "was dropped on the tiles", "crashed onto the floor",
                    "fell and shattered"),
    "paper_burn": ("caught fire", "was set alight", "touched a candle flame", "was burned"),
    "plant_wilt": ("got no water for weeks", "dried out completely", "was neglected in the heat",
                   "was never watered"),
    "balloon_pop": ("got pricked", "was hit by something sharp", "burst", "was popped with a needle"),
    "ball_squash": ("was crushed under something heavy", "got flattened", "was stepped on by an elephant",
                    "was squashed flat"),
    "egg_drop": ("fell onto the floor", "was dropped", "tumbled off the edge", "smashed on the ground"),
    "bread_toast": ("was toasted", "went in the toaster", "was grilled for a few minutes", "got toasted golden"),
    "sandcastle_wash": ("was swallowed by the sea", "got washed over by the tide", "was flooded by waves",
                        "was swept by the rising water"),
    "log_burn": ("went into the fire", "was burned to ash", "burned all night in the fireplace",
                 "sat in a bonfire all evening"),
    "log_split": ("was chopped with an axe", "got split in half", "was cut into two pieces",
                  "was cleaved down the middle"),
    "bucket_dent": ("got whacked with a hammer", "was crushed by a heavy wheel", "was stamped on",
                    "got badly bashed"),
    "ice_cream_drop": ("got knocked by an elbow", "was bumped hard", "got jostled", "was nudged by someone"),
    # story transformations whose outcome no other transformation gives also take clauses, commands and outcomes
    "balloon_deflate": ("slowly lost its air", "was left for a week after the party", "leaked overnight",
                        "went soft and saggy"),
    "apple_bite": ("got bitten", "had a chunk bitten out of it", "was nibbled by someone hungry",
                   "was tasted by a hungry child"),
    "paper_crumple": ("got scrunched into a ball", "was crushed in someone's fist", "was screwed up in frustration",
                      "was balled up and thrown away"),
    "egg_hatch": ("hatched", "was kept warm by a hen for weeks", "was incubated for three weeks",
                  "finally cracked open with a chick inside"),
    "candle_story": ("was lit and left burning all night", "was lit and forgotten until morning",
                     "burned from dinner until dawn"),
    "sandcastle_kick": ("got kicked over", "was trampled by a dog", "was stomped on"),
})
# imperatives; "{ref}" is the object (the last one of each list is held out)
COMMANDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ice_melt": ("melt {ref} completely", "put {ref} in the hot sun for an hour", "leave {ref} out in the heat"),
    "ice_soften": ("let {ref} sit for a few minutes", "warm {ref} up a little", "take {ref} out for a bit"),
    "ice_finish": ("melt the rest of {ref}", "let {ref} melt all the way", "give {ref} another hour"),
    "candle_burn": ("let {ref} burn all night", "keep {ref} burning until morning", "burn {ref} down"),
    "glass_tip": ("tip {ref} over", "push {ref} onto its side", "topple {ref}"),
    "ball_drop": ("drop {ref}", "release {ref}", "let {ref} fall"),
    "ball_kick": ("kick {ref}", "send {ref} flying upward", "boot {ref} into the air"),
    "seesaw_left": ("let go of {ref}", "release {ref}", "let {ref} tip"),
    "seesaw_right": ("let go of {ref}", "release {ref}", "let {ref} tip"),
    "snowman_melt": ("melt {ref}", "give {ref} a hot spring day", "warm up the day around {ref}"),
    "snowman_soften": ("let {ref} soften for an hour", "warm {ref} a little", "give {ref} some mild sun"),
    "snowman_finish": ("melt the rest of {ref}", "let {ref} melt away", "keep {ref} in the sun all week"),
    "ice_cream_melt": ("melt {ref}", "leave {ref} in the heat", "put {ref} in the sun"),
    "puddle_dry": ("dry up {ref}", "let {ref} evaporate", "let {ref} dry"),
    "banana_ripen": ("ripen {ref}", "let {ref} ripen", "age {ref} a few days"),
    "banana_spot": ("age {ref} by a week", "leave {ref} for a week", "let {ref} get spotty"),
    "banana_rot": ("let {ref} rot", "forget {ref} for three weeks", "leave {ref} for weeks"),
    "banana_spoil": ("let {ref} rot completely", "leave {ref} two more weeks", "let {ref} go black"),
    "apple_rot": ("let {ref} rot", "forget {ref} for a month", "age {ref} several weeks"),
    "plant_bloom": ("make {ref} flower", "let {ref} bloom", "care for {ref} until spring"),
    "tree_autumn": ("show {ref} in autumn", "fast-forward {ref} to october", "turn {ref} autumnal"),
    "tree_winter": ("show {ref} in winter", "fast-forward {ref} to january", "strip the leaves off {ref}"),
    "bread_mould": ("let {ref} go mouldy", "leave {ref} in a bag for weeks", "forget about {ref} for a month"),
    "bucket_rust": ("let {ref} rust", "leave {ref} out in the rain for a year", "weather {ref} for a year"),
    "sky_sunset": ("make it sunset", "turn the time to evening", "show it at sundown"),
    "sky_night": ("make it dark", "wait until night", "turn it to night"),
    "sky_midnight": ("make it nighttime", "turn day into night", "show it at night"),
    "sky_snow": ("make it winter", "cover everything in snow", "turn the weather snowy"),
    "candle_light": ("light {ref}", "set {ref} alight", "strike a match for {ref}"),
    "glass_break": ("smash {ref}", "drop {ref} onto the floor", "break {ref}"),
    "paper_burn": ("burn {ref}", "set {ref} alight", "hold {ref} to a flame"),
    "plant_wilt": ("stop watering {ref}", "let {ref} dry out", "neglect {ref} for weeks"),
    "balloon_pop": ("burst {ref}", "prick {ref} with a pin", "stick a needle in {ref}"),
    "ball_squash": ("flatten {ref}", "crush {ref}", "run over {ref}"),
    "egg_drop": ("crack {ref}", "drop {ref} on the floor", "knock {ref} off the table"),
    "bread_toast": ("toast {ref}", "grill {ref}", "put {ref} in the toaster"),
    "sandcastle_wash": ("wash {ref} away", "flood {ref}", "send a wave over {ref}"),
    "log_burn": ("burn {ref}", "throw {ref} on the fire", "put {ref} in the fireplace"),
    "log_split": ("split {ref}", "chop {ref} in half", "take an axe to {ref}"),
    "bucket_dent": ("dent {ref}", "bash {ref} with a hammer", "crush {ref}"),
    "ice_cream_drop": ("knock {ref} over", "bump {ref}", "jostle {ref}"),
    "balloon_deflate": ("let the air out of {ref}", "deflate {ref}", "let {ref} go flat"),
    "apple_bite": ("take a bite out of {ref}", "bite {ref}", "have a bite of {ref}"),
    "paper_crumple": ("crumple {ref}", "scrunch up {ref}", "screw {ref} into a ball"),
    "egg_hatch": ("hatch {ref}", "let {ref} hatch", "incubate {ref} for three weeks"),
    "candle_story": ("light {ref} and leave it all night", "light {ref} and let it burn down",
                     "light {ref} and forget about it until morning"),
    "sandcastle_kick": ("kick {ref}", "knock down {ref}", "stomp on {ref}"),
})
# bare outcomes ("{name}" = the object's name or a description); the last one of each list is held out
OUTCOMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ice_melt": ("{name} melted", "{name} turned to water", "melted {name}"),
    "ice_soften": ("{name} a bit melted", "{name} starting to melt", "slightly melted {name}"),
    "ice_finish": ("{name} fully melted", "{name} all gone", "{name} finished melting"),
    "candle_burn": ("{name} burned down", "burnt-out {name}", "{name} melted down to a stub"),
    "glass_tip": ("{name} tipped over", "{name} on its side", "spilled {name}"),
    "ball_drop": ("{name} on the ground", "{name} fell", "dropped {name}"),
    "ball_kick": ("{name} in the air", "{name} kicked up", "kicked {name}"),
    "seesaw_left": ("{name} tipped", "{name} settled", "tilted {name}"),
    "seesaw_right": ("{name} tipped", "{name} settled", "tilted {name}"),
    "snowman_melt": ("{name} melted", "{name} gone", "melted {name}"),
    "snowman_soften": ("{name} a little melted", "{name} slightly droopy", "{name} softening"),
    "snowman_finish": ("{name} completely melted", "{name} gone for good", "{name} melted away"),
    "ice_cream_melt": ("{name} melted", "melting {name}", "{name} dripping"),
    "puddle_dry": ("{name} dried", "{name} evaporated", "dry {name}"),
    "banana_ripen": ("{name} ripe", "ripe {name}", "{name} ripened"),
    "banana_spot": ("{name} spotty", "spotted {name}", "{name} with brown spots"),
    "banana_rot": ("{name} rotten", "rotten {name}", "{name} gone black"),
    "banana_spoil": ("{name} black", "{name} spoiled", "{name} totally rotten"),
    "apple_rot": ("{name} rotten", "rotten {name}", "{name} gone bad"),
    "plant_bloom": ("{name} flowering", "{name} with flowers", "blooming {name}"),
    "tree_autumn": ("{name} in autumn", "autumn {name}", "{name} in the fall"),
    "tree_winter": ("{name} in winter", "bare {name}", "{name} in january"),
    "bread_mould": ("{name} mouldy", "mouldy {name}", "{name} gone off"),
    "bucket_rust": ("{name} rusty", "rusted {name}", "{name} rusted through"),
    "sky_sunset": ("sunset", "evening", "dusk"),
    "sky_night": ("night", "nightfall", "after dark"),
    "sky_midnight": ("night time", "midnight", "the middle of the night"),
    "sky_snow": ("snow", "winter", "snowfall"),
    "candle_light": ("{name} lit", "lit {name}", "{name} burning"),
    "glass_break": ("{name} smashed", "broken {name}", "{name} shattered"),
    "paper_burn": ("{name} burnt", "burnt {name}", "{name} on fire"),
    "plant_wilt": ("{name} wilted", "dead {name}", "{name} dried out"),
    "balloon_pop": ("{name} popped", "popped {name}", "{name} burst"),
    "ball_squash": ("{name} flattened", "flat {name}", "{name} squashed"),
    "egg_drop": ("{name} cracked", "cracked {name}", "{name} broken"),
    "bread_toast": ("{name} toasted", "toasted {name}", "{name} toast"),
    "sandcastle_wash": ("{name} washed away", "{name} flattened by the sea", "{name} gone"),
    "log_burn": ("{name} burnt", "{name} turned to ash", "burnt {name}"),
    "log_split": ("{name} split", "split {name}", "{name} in two"),
    "bucket_dent": ("{name} dented", "dented {name}", "{name} bashed in"),
    "ice_cream_drop": ("{name} dropped", "dropped {name}", "{name} fell off"),
    "balloon_deflate": ("{name} deflated", "deflated {name}", "{name} shrivelled"),
    "apple_bite": ("{name} bitten", "bitten {name}", "{name} with a bite missing"),
    "paper_crumple": ("{name} crumpled", "crumpled {name}", "{name} in a ball"),
    "egg_hatch": ("{name} hatched", "hatched {name}", "a chick out of {name}"),
    "candle_story": ("{name} burned all night", "{name} burnt to a stub", "{name} burned down overnight"),
    "sandcastle_kick": ("{name} kicked over", "{name} knocked down", "{name} trampled"),
})
# more narratives for the story transformations, beside the generator's own (the last of each is held out)
STORY_PARAPHRASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "balloon_deflate": ("Nobody has played with {ref} since the party last weekend.",
                        "{ref} was tied to a chair and left there for ten days.",
                        "The celebration finished days ago and {ref} has sat in the corner ever since.",
                        "The kids lost interest in {ref} after the party, and it stayed in the hall for a week.",
                        "Days after the birthday, {ref} still hangs around the living room, slowly leaking.",
                        "Ever since the party, {ref} has been left alone in the garden."),
    "apple_bite": ("A hungry kid grabbed {ref} as a snack after school.",
                   "Someone peckish picked up {ref} and had a taste.",
                   "Dad was starving before dinner and spotted {ref}.",
                   "The horse leaned over the fence and munched on {ref}.",
                   "My friend couldn't wait for lunch and sank his teeth into {ref}.",
                   "On her way out, a famished girl helped herself to {ref}."),
    "paper_crumple": ("The student was furious with the letter written on {ref}.",
                      "After a terrible first draft, the poet gave up on {ref}.",
                      "He read {ref} once more and decided it was rubbish.",
                      "The angry novelist could not stand the words on {ref} any longer.",
                      "My sister ruined her drawing on {ref} and lost her temper.",
                      "Annoyed by all the mistakes, the clerk got rid of {ref}."),
    "egg_hatch": ("A hen kept {ref} warm in her nest for about three weeks.",
                  "{ref} sat in a warm incubator for twenty-one days.",
                  "The farmer left {ref} under a broody hen for weeks.",
                  "Three weeks of warmth from the mother bird passed over {ref}.",
                  "The chicken never left {ref}, keeping it cosy for weeks.",
                  "{ref} spent almost a month under a sitting hen."),
    "candle_story": ("Mum lit {ref} at dinner and it stayed burning all night long.",
                     "We put a match to {ref} for the party and forgot to put it out.",
                     "Someone lit {ref} in the evening and left it until sunrise.",
                     "{ref} was lit for the celebration and kept going through the night.",
                     "At the anniversary dinner {ref} was lit and never extinguished.",
                     "They lit {ref} before bed and it burned until breakfast."),
    "ice_cream_story": ("A girl got {ref} and then forgot it on a sunny bench.",
                        "The kid put {ref} down on the hot pavement and ran off to play.",
                        "{ref} was left on the picnic table through the hottest part of the day.",
                        "My cousin bought {ref}, got busy with football, and the sun kept shining.",
                        "Nobody ate {ref}; it sat out on a scorching afternoon.",
                        "A child set {ref} aside to join a game in the summer heat."),
    "plant_story": ("The flat stood empty for a month, and {ref} went without water.",
                    "The owners went travelling for weeks and forgot {ref}.",
                    "{ref} was left behind while everyone was on vacation for a month.",
                    "Nobody thought about {ref} during the long summer trip.",
                    "The house was empty for four weeks and {ref} got no water.",
                    "While the family was abroad for a month, {ref} was ignored."),
    "glass_story": ("The cat batted {ref} off the table.",
                    "A playful kitten knocked {ref} off the counter.",
                    "The dog's tail swept {ref} off the edge of the shelf.",
                    "My cat walked along the shelf and pushed {ref} over the edge.",
                    "A curious cat tapped {ref} with its paw, again and again, until it dropped.",
                    "The kitten chased a fly and sent {ref} tumbling to the floor."),
    "snowman_story": ("{ref} has stood in the garden since January, and April just turned warm.",
                      "Weeks after the kids made {ref}, a spell of warm spring weather arrived.",
                      "Spring came early this year, and {ref} from the winter holidays felt it.",
                      "{ref} survived all of February, but then came a week of sunshine.",
                      "Winter ended and a warm week followed for {ref}.",
                      "Months after it was built, {ref} met the first hot days of spring."),
    "sandcastle_kick": ("A dog chasing a ball ran right over {ref}.",
                        "Some kid playing football stumbled into {ref}.",
                        "A jogger on the beach didn't see {ref} and stepped on it.",
                        "A puppy bounded across the sand and straight through {ref}.",
                        "A boy running to the sea kicked {ref} by accident.",
                        "A galloping dog ploughed into {ref}."),
})
_QUESTION_FRAMES = ("what if {clause}?", "what would happen if {clause}?", "how about if {clause}?",
                    "what would it look like if {clause}", "{clause}. what then?", "so {clause}. now what?",
                    "if {clause}, what would we see", "could you show what happens if {clause}?")
_STATEMENT_FRAMES = ("{clause}.", "imagine {clause}.", "say {clause}.", "{clause}, show me the result",
                     "suppose {clause}", "picture {clause}")
_COMMAND_FRAMES = ("{command}", "{command}.", "please {command}", "{command} and show me", "go ahead and {command}",
                   "can you {command}?")
_OUTCOME_FRAMES = ("{outcome}", "{outcome}.", "show {outcome}", "{outcome} please", "i want {outcome}")
_STORY_FRAMES = ("{story}", "{story} show it.", "{story} what does it look like now?", "{story} what now?",
                 "{story} show me.", "{story} what's left?", "{story} how does it look after?",
                 "here's the story: {story}")
_POLITE = ("please", "hey,", "hi!", "ok so", "um,", "quick question:", "just wondering,", "could you help?")
_TRAILERS = ("thanks!", "thank you", "please", "if you can", ":)", "cheers")
# held-out families: never in rephrase(split="train"); only in split="test"
HELDOUT_FAMILIES: frozenset[str] = frozenset({
    "frame:could you show what happens if {clause}?", "frame:picture {clause}", "frame:can you {command}?",
    "frame:i want {outcome}", "frame:here's the story: {story}", "paraphrase:last",
})
FAMILIES = ("question", "statement", "command", "outcome", "story", "template")


def _pick(rng: random.Random, options, split: str, key_prefix: str):
    """A frame from ``options`` allowed in ``split`` (held-out frames only in "test")."""
    held = [o for o in options if f"{key_prefix}:{o}" in HELDOUT_FAMILIES]
    if split == "test" and held and rng.random() < 0.5:
        return rng.choice(held)
    return rng.choice([o for o in options if o not in held])


def _phrases(options: tuple[str, ...], split: str) -> tuple[str, ...]:
    """The last paraphrase of each list is held out for the test split."""
    return options if split == "test" else options[:-1]


def object_reference(kind: str, name: str, colour: str | None, position: str | None, *, unique_name: bool,
                     unique_colour: bool, rng: random.Random) -> str:
    """How a person might point at the object: a description or synonym, colour / position when needed."""
    if kind == "sky":
        return rng.choice(SKY_REFERENCES)
    nouns = [name] * 3
    if name == KINDS[kind].name:
        nouns += list(KINDS[kind].synonyms) + list(KIND_DESCRIPTIONS.get(kind, ()))
    noun = rng.choice(nouns)
    det = rng.choice(("the", "the", "the", "that", "this"))
    options = []
    if position:
        pos = rng.choice(POSITION_PHRASES[position] + (f"on the {position}" if "centre" not in position else "",))
        options.append(f"{det} {noun} {pos}".replace("  ", " ").strip())
    if colour and unique_colour:
        options.append(f"{det} {colour} {noun}")
    if unique_name:
        options += [f"{det} {noun}"] * 2
    return rng.choice(options) if options else f"{det} {noun}"


def rephrase(*, transformation: str, ref: str, rng: random.Random, split: str = "train",
             family: str | None = None) -> str:
    """One instruction for ``transformation`` about the object ``ref`` ("the red apple on the left"; for the sky
    any scene-level phrase) in a random family, with politeness and noise. ``split="test"`` may use the held-out
    families; "train" never does."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    tr = TRANSFORMATIONS_BY_ID[transformation]
    if family is None:
        clause_families = ("question", "statement", "command", "outcome", "question")
        if tr.stories and (transformation not in COMMANDS or rng.random() < 0.6):
            family = "story"
        else:
            family = rng.choice(clause_families)
    if family == "story":
        if not tr.stories:
            raise ValueError(f"{transformation} has no stories")
        stories = list(tr.stories) + list(_phrases(STORY_PARAPHRASES.get(transformation, ()), split))
        story = rng.choice(stories).format(ref=ref)
        text = _pick(rng, _STORY_FRAMES, split, "frame").format(story=story[0].upper() + story[1:])
    elif family in ("question", "statement"):
        conds = list(tr.conditions) + list(_phrases(CONDITION_PARAPHRASES.get(transformation, ()), split))
        if not conds:
            raise ValueError(f"{transformation} has no {family} wording")
        clause = f"{ref} {rng.choice(conds)}"
        if tr.kind == "sky" and rng.random() < 0.5:
            clause = f"it {rng.choice(conds)}"
        frames = _QUESTION_FRAMES if family == "question" else _STATEMENT_FRAMES
        text = _pick(rng, frames, split, "frame").format(clause=clause)
    elif family == "command":
        if transformation not in COMMANDS:
            raise ValueError(f"{transformation} has no command wording")
        command = rng.choice(_phrases(COMMANDS[transformation], split)).format(ref=ref)
        text = _pick(rng, _COMMAND_FRAMES, split, "frame").format(command=command)
    elif family == "outcome":
        name = re.sub(r"^(the|that|this) ", "", ref)
        if transformation not in OUTCOMES:
            raise ValueError(f"{transformation} has no outcome wording")
        outcome = rng.choice(_phrases(OUTCOMES[transformation], split)).format(name=name)
        text = _pick(rng, _OUTCOME_FRAMES, split, "frame").format(outcome=outcome)
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES[:-1]}")
    if rng.random() < 0.15:
        text = f"{rng.choice(_POLITE)} {text}"
    if rng.random() < 0.1:
        text = f"{text} {rng.choice(_TRAILERS)}"
    return add_noise(text, rng)


_MISSPELLINGS = {"the": ("teh", "th"), "what": ("wat", "whta"), "would": ("woud", "wuld"), "if": ("fi",),
                 "were": ("where", "wer"), "happen": ("hapen", "happn"), "night": ("nite",), "look": ("lok",),
                 "candle": ("candel",), "banana": ("bananna",), "balloon": ("baloon", "ballon"),
                 "bucket": ("bukket",), "apple": ("appel",), "paper": ("papper",), "weeks": ("weks",)}


def add_noise(text: str, rng: random.Random) -> str:
    """Case, punctuation and typo noise, each with its own probability (the text is often left as it is)."""
    if rng.random() < 0.3:
        words = text.split(" ")
        for i, w in enumerate(words):
            r = rng.random()
            if w.lower() in _MISSPELLINGS and r < 0.3:
                words[i] = rng.choice(_MISSPELLINGS[w.lower()])
            elif len(w) > 4 and w.isalpha() and r < 0.06:
                j = rng.randrange(1, len(w) - 1)
                words[i] = rng.choice((w[:j] + w[j + 1:], w[:j] + w[j] + w[j:], w[:j] + w[j + 1] + w[j] + w[j + 2:]))
        text = " ".join(words)
    r = rng.random()
    if r < 0.15:
        text = text.upper()
    elif r < 0.5:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.2:
        text = text.rstrip(".?!") + rng.choice(("", "??", "!", "...", " ?"))
    return text


def reference_for(record, rng: random.Random) -> str:
    """A person's way of pointing at a Reason50K record's target: a description or synonym, with colour and / or
    position when the name alone is ambiguous (and sometimes when it is not)."""
    t = record.target
    if t.kind == "sky":
        return object_reference("sky", "sky", None, None, unique_name=True, unique_colour=True, rng=rng)
    same = [o for o in record.scene.objects if o.name == t.name]
    unique_colour = sum(o.shown_colour == t.colour for o in same) == 1
    use_pos = len(same) > 1 and (not unique_colour or rng.random() < 0.5) or rng.random() < 0.2
    use_colour = len(same) > 1 and unique_colour and not use_pos or rng.random() < 0.2
    return object_reference(t.kind, t.name, t.colour if use_colour else None, t.position if use_pos else None,
                            unique_name=len(same) == 1, unique_colour=unique_colour, rng=rng)


def rephrase_record(record, rng: random.Random, split: str = "train") -> str:
    """``rephrase`` for a Reason50K record of the synth world (its transformation and target)."""
    return rephrase(transformation=record.transformation, ref=reference_for(record, rng), rng=rng, split=split)
