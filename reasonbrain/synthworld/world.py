"""The synthetic reasoning world: colours, object kinds, states, transformations, backgrounds, scenes.

Categories (Reason50K's four reasoning scenarios) and the proportions this world samples them with:

    physical 35%   temporal 25%   causal 25%   story 15%

A *transformation* is a state change ``kind: src -> dst`` that belongs to one category and carries the
hypothetical conditions ("were left in the hot sun for an hour") or, for story samples, short narratives
("After the party, the kids forgot {ref} outside overnight.") that imply it. The pseudo-kind ``sky`` is
scene-level: its states (day, sunset, night, snowy) restyle the whole background, objects untouched.

Everything here is immutable data; nothing is mutated at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from reasonbrain.referring import DEFAULT_POSITIONS, Vocabulary

CATEGORIES: tuple[str, ...] = ("physical", "temporal", "causal", "story")
CATEGORY_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"physical": 0.35, "temporal": 0.25, "causal": 0.25, "story": 0.15}
)

COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "red": (214, 40, 40),
        "green": (60, 165, 60),
        "blue": (45, 95, 215),
        "yellow": (245, 210, 40),
        "pink": (245, 130, 185),
        "orange": (245, 140, 35),
        "white": (240, 240, 232),
        "brown": (135, 85, 45),
        "purple": (145, 65, 190),
        "grey": (140, 142, 150),
        "black": (40, 36, 34),
    }
)

BACKGROUNDS: tuple[str, ...] = ("kitchen", "garden", "outdoor", "room", "beach")
INDOOR_BACKGROUNDS: frozenset[str] = frozenset({"kitchen", "room"})
BACKGROUND_VARIANTS = 12  # colour variants per background kind (wall/ground/table palettes)
TIMES: tuple[str, ...] = ("day", "sunset", "night", "snowy")  # the states of the scene-level sky

# Slot layouts: up to 3 objects use 3 slots, 4 objects use 4 slots. Position names are referable words.
SLOT_POSITIONS: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {3: ("left", "centre", "right"), 4: ("left", "centre-left", "centre-right", "right")}
)
POSITION_PHRASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "left": ("on the left",),
        "centre": ("in the centre", "in the middle"),
        "right": ("on the right",),
        "centre-left": ("on the centre-left",),
        "centre-right": ("on the centre-right",),
    }
)


@dataclass(frozen=True)
class StateSpec:
    desc: str  # short description, "{c}" is the object's colour name
    colour: str | None = None  # the colour the object shows in this state (overrides its own colour)
    noun: str | None = None  # the object's name in this state (ice cube -> puddle)


@dataclass(frozen=True, eq=False)
class KindSpec:
    id: str
    name: str
    synonyms: tuple[str, ...]
    palette: tuple[str, ...]
    states: Mapping[str, StateSpec]
    initial: tuple[str, ...]  # states objects of this kind start in (distractors included)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    scene_level: bool = False


@dataclass(frozen=True)
class Transformation:
    id: str
    kind: str
    src: str
    dst: str
    category: str
    conditions: tuple[str, ...] = ()  # subjunctive clauses: "if {ref} <condition>" / "if it <condition>"
    stories: tuple[str, ...] = ()  # narratives containing "{ref}" (story category)


def _k(id_, name, synonyms, palette, states, initial, backgrounds=BACKGROUNDS, scene_level=False) -> KindSpec:
    return KindSpec(id_, name, tuple(synonyms), tuple(palette), MappingProxyType(states), tuple(initial),
                    tuple(backgrounds), scene_level)


_S = StateSpec
_OUT = ("garden", "outdoor", "beach")
KINDS: Mapping[str, KindSpec] = MappingProxyType({k.id: k for k in (
    _k("ice_cube", "ice cube", ["cube", "ice block", "block of ice"], ["blue", "white"],
       {"solid": _S("a {c} ice cube"), "half": _S("a half-melted {c} ice cube in a small puddle"),
        "puddle": _S("a puddle of melted water", "blue", "puddle"), "damp": _S("a faint damp stain", "grey", "stain")},
       ["solid"]),
    _k("apple", "apple", [], ["red", "green", "yellow"],
       {"fresh": _S("a shiny {c} apple"), "rotten": _S("a rotten, shrivelled brown apple", "brown"),
        "bitten": _S("a {c} apple with a big bite taken out")}, ["fresh"]),
    _k("banana", "banana", [], ["yellow"],
       {"green": _S("an unripe green banana", "green"), "ripe": _S("a ripe yellow banana", "yellow"),
        "spotted": _S("an overripe banana covered in brown spots", "yellow"),
        "black": _S("a rotten black banana", "black")}, ["green", "ripe"]),
    _k("candle", "candle", ["taper"], ["white", "red", "blue", "yellow"],
       {"unlit": _S("an unlit {c} candle"), "lit": _S("a tall {c} candle with a burning flame"),
        "stub": _S("a burnt-down {c} candle stub in a pool of wax")}, ["unlit"]),
    _k("glass", "glass", ["tumbler", "drinking glass"], ["blue", "green", "purple"],
       {"full": _S("a {c} glass of water"), "shattered": _S("shards of broken {c} glass in a small puddle"),
        "spilled": _S("a {c} glass lying on its side in spilled water")}, ["full"]),
    _k("paper", "paper", ["sheet of paper", "piece of paper", "page"], ["white", "yellow", "pink"],
       {"flat": _S("a flat sheet of {c} paper"), "burnt": _S("a charred black scrap of paper", "black"),
        "crumpled": _S("a crumpled ball of {c} paper")}, ["flat"]),
    _k("plant", "plant", ["potted plant", "houseplant"], ["orange", "blue", "white"],
       {"healthy": _S("a healthy green plant in a {c} pot"), "wilted": _S("a wilted brown plant in a {c} pot"),
        "blooming": _S("a plant with pink flowers in a {c} pot")}, ["healthy"]),
    _k("balloon", "balloon", ["party balloon"], ["red", "blue", "green", "yellow", "pink", "purple"],
       {"inflated": _S("a round {c} balloon on a string"), "deflated": _S("a shrunken, deflated {c} balloon on the ground"),
        "popped": _S("torn scraps of a popped {c} balloon")}, ["inflated"]),
    _k("ball", "ball", ["rubber ball", "toy ball"], ["red", "blue", "yellow", "green", "purple"],
       {"held": _S("a {c} ball held high in the air"), "floor": _S("a {c} ball resting on the ground"),
        "flat": _S("a squashed, flat {c} ball")}, ["held", "floor"]),
    _k("egg", "egg", ["raw egg"], ["white", "brown"],
       {"whole": _S("a whole {c} egg"), "cracked": _S("a cracked {c} egg with its yolk spilled out"),
        "hatched": _S("a yellow chick next to a broken {c} eggshell")}, ["whole"]),
    _k("snowman", "snowman", ["snow man"], ["red", "blue", "green"],
       {"intact": _S("a snowman with a {c} scarf"), "half": _S("a half-melted, lopsided snowman with a {c} scarf"),
        "melted": _S("a puddle with a carrot and a {c} scarf where a snowman stood")}, ["intact"],
       ("garden", "outdoor")),
    _k("tree", "tree", ["young tree"], ["green"],
       {"summer": _S("a leafy green tree"), "autumn": _S("a tree with orange autumn leaves", "orange"),
        "bare": _S("a bare tree with snow on its branches", "brown")}, ["summer"], ("garden", "outdoor")),
    _k("seesaw", "seesaw", ["teeter-totter", "see-saw"], ["red", "blue", "yellow"],
       {"level_l": _S("a level {c} seesaw with a heavy rock on its left end and a light ball on its right end"),
        "level_r": _S("a level {c} seesaw with a light ball on its left end and a heavy rock on its right end"),
        "tilt_l": _S("a {c} seesaw tilted down on the left under a heavy rock"),
        "tilt_r": _S("a {c} seesaw tilted down on the right under a heavy rock")},
       ["level_l", "level_r"], _OUT),
    _k("ice_cream", "ice cream", ["ice cream cone", "cone"], ["pink", "white", "brown"],
       {"scoop": _S("a {c} ice cream cone"), "melted": _S("a melted {c} ice cream dripping into a puddle"),
        "dropped": _S("a {c} ice cream scoop fallen on the ground next to its cone")}, ["scoop"]),
    _k("bread", "bread", ["slice of bread", "bread slice"], ["white", "brown"],
       {"fresh": _S("a fresh slice of {c} bread"), "toasted": _S("a golden-brown slice of toast", "brown"),
        "mouldy": _S("a mouldy slice of {c} bread with green spots")}, ["fresh"]),
    _k("sandcastle", "sandcastle", ["sand castle"], ["yellow", "orange"],
       {"built": _S("a {c} sandcastle with two towers"), "washed": _S("a low, smooth mound of wet sand"),
        "broken": _S("a {c} sandcastle with a tower knocked off")}, ["built"], ("beach",)),
    _k("bucket", "bucket", ["metal bucket", "pail"], ["grey"],
       {"shiny": _S("a shiny grey metal bucket"), "rusty": _S("a rusty orange-brown bucket", "orange"),
        "dented": _S("a badly dented grey bucket")}, ["shiny"]),
    _k("log", "log", ["wooden log", "firewood"], ["brown"],
       {"whole": _S("a brown wooden log"), "ash": _S("a pile of grey ash with glowing embers", "grey"),
        "split": _S("a log split into two halves")}, ["whole"], ("garden", "outdoor", "beach", "room")),
    _k("sky", "sky", ["weather"], [],
       {"day": _S("in daylight"), "sunset": _S("at sunset"), "night": _S("at night"), "snowy": _S("in snowy winter weather")},
       ["day"], BACKGROUNDS, scene_level=True),
)})

_T = Transformation
TRANSFORMATIONS: tuple[Transformation, ...] = (
    # --- physical
    _T("ice_melt", "ice_cube", "solid", "puddle", "physical",
      ("were left in the hot sun for an hour", "sat on a sunny windowsill all afternoon", "were left out on a hot summer day")),
    _T("ice_soften", "ice_cube", "solid", "half", "physical",
      ("sat at room temperature for ten minutes", "were left out for just a few minutes")),
    _T("ice_finish", "ice_cube", "half", "puddle", "physical",
      ("kept melting for another hour", "stayed in the warm room until lunchtime")),
    _T("candle_burn", "candle", "lit", "stub", "physical", ("were left burning all night", "kept burning for eight hours")),
    _T("glass_tip", "glass", "full", "spilled", "physical", ("were tipped onto its side", "lost its balance and fell over")),
    _T("ball_drop", "ball", "held", "floor", "physical", ("were let go", "were suddenly dropped", "were released from the hand holding it")),
    _T("ball_kick", "ball", "floor", "held", "physical", ("were kicked hard from below", "bounced off a springy trampoline")),
    _T("seesaw_left", "seesaw", "level_l", "tilt_l", "physical",
      ("were released with both weights on it", "were let go and left to settle")),
    _T("seesaw_right", "seesaw", "level_r", "tilt_r", "physical",
      ("were released with both weights on it", "were let go and left to settle")),
    _T("snowman_melt", "snowman", "intact", "melted", "physical",
      ("stood in the warm spring sunshine all day", "were left out when the temperature rose to twenty degrees")),
    _T("snowman_soften", "snowman", "intact", "half", "physical", ("stood in mild sunshine for an hour",)),
    _T("snowman_finish", "snowman", "half", "melted", "physical", ("stayed in the sun for the rest of the week",)),
    _T("ice_cream_melt", "ice_cream", "scoop", "melted", "physical",
      ("were left out on a scorching afternoon", "sat in the hot sun for half an hour")),
    # --- temporal
    _T("puddle_dry", "ice_cube", "puddle", "damp", "temporal",
      ("were left in the sun for the rest of the day", "had the whole afternoon to evaporate")),
    _T("banana_ripen", "banana", "green", "ripe", "temporal", ("sat in the fruit bowl for a few days", "ripened on the counter for four days")),
    _T("banana_spot", "banana", "ripe", "spotted", "temporal", ("were left on the counter for a week",)),
    _T("banana_rot", "banana", "ripe", "black", "temporal", ("were forgotten in the fruit bowl for three weeks",)),
    _T("banana_spoil", "banana", "spotted", "black", "temporal", ("were forgotten for another two weeks",)),
    _T("apple_rot", "apple", "fresh", "rotten", "temporal",
      ("were left in a bowl for several weeks", "were forgotten behind the cupboard for a month")),
    _T("plant_bloom", "plant", "healthy", "blooming", "temporal", ("were cared for until the middle of spring", "grew for a few more weeks in spring")),
    _T("tree_autumn", "tree", "summer", "autumn", "temporal", ("lived through the first cold weeks of autumn", "were seen again in late October")),
    _T("tree_winter", "tree", "autumn", "bare", "temporal", ("went through the first snowstorm of winter", "were seen again in January")),
    _T("bread_mould", "bread", "fresh", "mouldy", "temporal", ("were forgotten in a bag for two weeks", "sat in a damp cupboard for a month")),
    _T("bucket_rust", "bucket", "shiny", "rusty", "temporal", ("were left out in the rain for a year", "stood outside through many wet months")),
    _T("sky_sunset", "sky", "day", "sunset", "temporal", ("were watched until the sun went down", "were seen again a few hours later, at dusk")),
    _T("sky_night", "sky", "sunset", "night", "temporal", ("darkened for a few more hours", "were seen again once the stars came out")),
    _T("sky_midnight", "sky", "day", "night", "temporal", ("were seen again at midnight", "went on for twelve more hours")),
    _T("sky_snow", "sky", "day", "snowy", "temporal", ("turned freezing and it snowed all night", "changed as deep winter arrived")),
    # --- causal
    _T("candle_light", "candle", "unlit", "lit", "causal", ("were touched by a burning match", "had a match held to its wick")),
    _T("glass_break", "glass", "full", "shattered", "causal", ("fell from the table onto the hard floor", "were knocked off the edge by a cat")),
    _T("paper_burn", "paper", "flat", "burnt", "causal", ("were held over an open flame", "caught a spark from the fireplace")),
    _T("plant_wilt", "plant", "healthy", "wilted", "causal", ("went without water for three weeks", "were never watered during a heatwave")),
    _T("balloon_pop", "balloon", "inflated", "popped", "causal", ("were poked with a sharp pin", "brushed against a thorny bush")),
    _T("ball_squash", "ball", "floor", "flat", "causal", ("were run over by a heavy cart", "had a heavy box dropped on it")),
    _T("egg_drop", "egg", "whole", "cracked", "causal", ("rolled off the edge and hit the ground", "were dropped from shoulder height")),
    _T("bread_toast", "bread", "fresh", "toasted", "causal", ("went through a hot toaster", "were left under the grill for five minutes")),
    _T("sandcastle_wash", "sandcastle", "built", "washed", "causal", ("were hit by the incoming tide", "were struck by a big wave")),
    _T("log_burn", "log", "whole", "ash", "causal", ("were thrown onto a roaring campfire", "burned in the fireplace all evening")),
    _T("log_split", "log", "whole", "split", "causal", ("were struck hard with an axe",)),
    _T("bucket_dent", "bucket", "shiny", "dented", "causal", ("were run over by a tractor", "were hit with a heavy hammer")),
    _T("ice_cream_drop", "ice_cream", "scoop", "dropped", "causal", ("were bumped hard by a passing elbow",)),
    # --- story
    _T("balloon_deflate", "balloon", "inflated", "deflated", "story",
      stories=("After the party, the kids forgot {ref} outside overnight.",
               "The birthday was a week ago, and since then nobody has touched {ref}.")),
    _T("apple_bite", "apple", "fresh", "bitten", "story",
      stories=("A hungry child walked past {ref} on the way out and could not resist.",)),
    _T("paper_crumple", "paper", "flat", "crumpled", "story",
      stories=("The frustrated writer hated every word scribbled on {ref}.",)),
    _T("egg_hatch", "egg", "whole", "hatched", "story", stories=("A mother hen sat on {ref} day and night for three weeks.",)),
    _T("candle_story", "candle", "unlit", "stub", "story",
      stories=("Grandma lit {ref} for the birthday dinner, and nobody blew it out until the next morning.",)),
    _T("ice_cream_story", "ice_cream", "scoop", "melted", "story",
      stories=("A boy bought {ref} but got distracted by a game in the blazing afternoon heat.",)),
    _T("plant_story", "plant", "healthy", "wilted", "story",
      stories=("The family left for a month-long holiday and nobody remembered {ref}.",)),
    _T("glass_story", "glass", "full", "shattered", "story", stories=("The cat jumped up and swatted {ref} off the edge of the shelf.",)),
    _T("snowman_story", "snowman", "intact", "melted", "story",
      stories=("The children built {ref} in January, and then the first warm week of April arrived.",)),
    _T("sandcastle_kick", "sandcastle", "built", "broken", "story", stories=("A running dog tripped straight into {ref}.",)),
)
TRANSFORMATIONS_BY_ID: Mapping[str, Transformation] = MappingProxyType({t.id: t for t in TRANSFORMATIONS})

# Compositional hold-out: these object-kind x background combinations appear only in the test split
# (for train/val no object of the kind is placed in that background, target or distractor).
HELDOUT_COMBOS: frozenset[tuple[str, str]] = frozenset({
    ("apple", "beach"), ("candle", "garden"), ("ball", "kitchen"), ("glass", "room"), ("balloon", "beach"),
    ("plant", "outdoor"), ("egg", "garden"), ("paper", "beach"), ("ice_cube", "room"), ("tree", "outdoor"),
    ("banana", "garden"), ("bread", "outdoor"),
})


def object_kinds() -> list[str]:
    """Ids of the object kinds (the scene-level ``sky`` excluded)."""
    return [k for k, spec in KINDS.items() if not spec.scene_level]


def transformations_from(kind: str, state: str) -> list[Transformation]:
    return [t for t in TRANSFORMATIONS if t.kind == kind and t.src == state]


def distinct_transitions() -> set[tuple[str, str, str]]:
    """Distinct ``(kind, src, dst)`` state changes (a story and a causal id may share one)."""
    return {(t.kind, t.src, t.dst) for t in TRANSFORMATIONS}


# How people describe objects besides their names and synonyms: never matched word for word by the parser, only by
# similarity when binding an instruction to the picture's objects (and used by synthworld.language).
KIND_DESCRIPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ice_cube": ("ice", "piece of ice", "chunk of ice", "cold cube", "frozen cube", "lump of ice"),
    "apple": ("round fruit", "crisp fruit"),
    "banana": ("yellow fruit", "curved fruit", "long fruit"),
    "candle": ("wax candle", "candlestick", "wax light"),
    "glass": ("glass of water", "tumbler of water", "cup of water", "water glass"),
    "paper": ("sheet", "note", "scrap of paper", "letter"),
    "plant": ("pot plant", "flower pot", "green plant", "leafy plant"),
    "balloon": ("helium balloon", "balloon on a string", "inflatable"),
    "ball": ("toy", "bouncy ball", "beach ball"),
    "egg": ("hen's egg", "shell", "chicken egg"),
    "snowman": ("snow sculpture", "man made of snow", "snow figure"),
    "tree": ("little tree", "sapling", "small tree"),
    "seesaw": ("see saw", "playground seesaw"),
    "ice_cream": ("ice-cream", "scoop of ice cream", "dessert", "gelato", "frozen treat"),
    "bread": ("toast", "loaf slice", "slice", "bread loaf"),
    "sandcastle": ("castle of sand", "sand tower", "sand sculpture"),
    "bucket": ("tin bucket", "steel bucket", "metal pail", "tin pail"),
    "log": ("piece of wood", "chunk of wood", "timber", "wooden block"),
})
SKY_REFERENCES: tuple[str, ...] = ("the sky", "this place", "the view", "here", "the scene", "this picture",
                                   "the weather", "everything", "the sun", "the daylight")

# ----------------------------------------------------------------------------------------- scenes
@dataclass
class SceneObject:
    kind: str
    colour: str  # the object's own palette colour (drives rendering)
    state: str
    slot: int
    position: str
    size: float = 1.0
    box: list[int] | None = None  # [x0, y0, x1, y1] in output pixels, filled by the renderer

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    @property
    def name(self) -> str:
        """The name the object goes by in its current state (canonical, referable)."""
        return self.spec.states[self.state].noun or self.spec.name

    @property
    def shown_colour(self) -> str:
        return self.spec.states[self.state].colour or self.colour

    def description(self) -> str:
        return self.spec.states[self.state].desc.format(c=self.colour)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "colour": self.shown_colour, "base_colour": self.colour,
                "state": self.state, "position": self.position, "slot": self.slot, "size": self.size, "box": self.box}

    @classmethod
    def from_dict(cls, d: Mapping) -> SceneObject:
        return cls(kind=d["kind"], colour=d["base_colour"], state=d["state"], slot=d["slot"], position=d["position"],
                   size=d.get("size", 1.0), box=list(d["box"]) if d.get("box") is not None else None)


@dataclass
class Background:
    kind: str
    variant: int
    time: str = "day"  # the sky's state

    def description(self) -> str:
        place = {"kitchen": "a kitchen table", "garden": "a garden lawn", "outdoor": "an open field",
                 "room": "a room with a wooden floor", "beach": "a sandy beach"}[self.kind]
        return f"{place} {KINDS['sky'].states[self.time].desc}"


@dataclass
class Scene:
    background: Background
    objects: list[SceneObject]
    n_slots: int = 3

    def copy(self) -> Scene:
        return Scene(replace(self.background), [replace(o, box=None) for o in self.objects], self.n_slots)

    def with_state(self, index: int, state: str) -> Scene:
        """A copy where object ``index`` (or the sky when ``index == -1``) is in ``state``."""
        out = self.copy()
        if index < 0:
            out.background.time = state
        else:
            out.objects[index].state = state
        return out

    def description(self) -> str:
        objs = [f"{o.description()} {POSITION_PHRASES[o.position][0]}" for o in self.objects]
        text = " and ".join([", ".join(objs[:-1]), objs[-1]]) if len(objs) > 1 else (objs[0] if objs else "")
        return f"{self.background.description()}, with {text}" if text else self.background.description()

    def to_dict(self) -> dict:
        return {"background": {"kind": self.background.kind, "variant": self.background.variant,
                               "time": self.background.time},
                "n_slots": self.n_slots, "objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Scene:
        bg = d["background"]
        return cls(Background(bg["kind"], bg["variant"], bg["time"]),
                   [SceneObject.from_dict(o) for o in d["objects"]], d.get("n_slots", 3))


# ------------------------------------------------------------------------------------- vocabulary
def build_vocabulary() -> Vocabulary:
    """Referable names (kind names, state nouns like "puddle", synonyms), colours and positions."""
    kinds: dict[str, tuple[str, ...]] = {}
    for spec in KINDS.values():
        kinds[spec.name] = tuple(spec.synonyms)
        for st in spec.states.values():
            if st.noun and st.noun not in kinds:
                kinds[st.noun] = ()
    colours = {c: c for c in COLOURS} | {"gray": "grey"}
    # hyphenated compounds only: "in the centre right off the edge" must not read as a position
    positions = {k: v for k, v in DEFAULT_POSITIONS.items() if k in ("left", "right", "middle") or k.startswith("cent")}
    positions = {k: v for k, v in positions.items() if " " not in k}
    descriptions = {KINDS[k].name: v for k, v in KIND_DESCRIPTIONS.items()}
    descriptions["sky"] = tuple(r.removeprefix("the ") for r in SKY_REFERENCES)
    return Vocabulary(kinds=kinds, colours=colours, positions=positions, descriptions=descriptions, scene_level="sky")


VOCABULARY: Vocabulary = build_vocabulary()
