"""The settings of one training run (`fgtf.train`), in sections.

    TrainConfig(data=DataSettings(dataset_dir="data/cub_200/tfrecords", dataset="cub_200"),
                run=RunSettings(run_dir="runs/cub"),
                model=ModelSettings(model="resnet50"),
                head=HeadSettings(head="sef", options={"sef_groups": 4}),
                schedule=ScheduleSettings(epochs=50, batch_size=32))

Each section is one argument group of `python -m fgtf.train --help`, and
each field is named as its flag (`--run_dir` is `run.run_dir`, `--image_size`
is `data.image_size`): one name per setting, in code as on the command line.
A field left None is decided by the run, the data or the network (the flag's
help says how). A head declares its own options (`fgtf.models.heads.Head.flags`);
`HeadSettings.options` holds those of the run's head only.

A run folder's `run_config.json` keeps the whole config (`to_dict`) under
`training`; `TrainConfig.from_dict` reads it back.
"""
import dataclasses
import json
from typing import Optional

from fgtf.errors import UserError


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """The training data and how it is read."""
    dataset_dir: str
    dataset: str = "folder"  # fgtf.datasets.GENERIC: classes counted from the data
    num_classes: Optional[int] = None
    image_size: Optional[int] = None
    preprocessing: Optional[str] = None
    label_ratio: Optional[float] = None
    min_crop_area: Optional[float] = None
    skip_bad_records: bool = False


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The backbone."""
    model: Optional[str] = None
    drop_path_rate: float = 0.0
    batch_norm_decay: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """The FGVC head on the backbone's feature map and its own options
    ({flag destination: value}, as the head declares them)."""
    head: str = "none"
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FineTuningSettings:
    """Where the weights start and which of them train."""
    checkpoint: Optional[str] = None
    checkpoint_exclude_scopes: str = ""
    no_ema: bool = False
    trainable_scopes: str = ""
    scope_matching: str = "substring"
    frozen_batch_norm: str = "train"


@dataclasses.dataclass(frozen=True)
class OptimizationSettings:
    """The loss and the optimizer (the learning rate's course is `ScheduleSettings`)."""
    optimizer: str = "rmsprop"
    learning_rate_multipliers: tuple = ()  # ((scope, factor), ...)
    momentum: float = 0.9
    nesterov: bool = False
    rmsprop_decay: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_initial_mean_square: float = 1.0
    opt_epsilon: Optional[float] = None
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: Optional[float] = None
    weight_decay_mode: Optional[str] = None
    clip_gradient_norm: Optional[float] = None
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.4
    moving_average_decay: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    """The learning rate's course, the batch and the run's length."""
    learning_rate: float = 0.01
    learning_rate_decay_type: str = "exponential"
    learning_rate_decay_factor: float = 0.94
    num_epochs_per_decay: float = 2.0
    num_steps_per_decay: Optional[int] = None
    milestone_epochs: tuple = ()
    milestone_steps: tuple = ()
    end_learning_rate: Optional[float] = None
    warmup_epochs: float = 0.0
    warmup_steps: Optional[int] = None
    batch_size: int = 32
    max_number_of_steps: Optional[int] = None
    epochs: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """Evaluation during training (none unless an interval is given)."""
    eval_every_epochs: Optional[float] = None
    eval_every_steps: Optional[int] = None
    eval_split: str = "validation"
    eval_batch_size: Optional[int] = None
    eval_views: int = 1

    @property
    def enabled(self):
        return self.eval_every_epochs is not None or self.eval_every_steps is not None


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The run folder, the seed, logging, checkpoints and devices."""
    run_dir: str
    seed: int = 0
    log_every_n_steps: int = 10
    save_summaries_secs: float = 60
    save_interval_secs: float = 600
    max_checkpoints_to_keep: int = 3
    strategy: str = "default"
    tpu: Optional[str] = None
    mixed_precision: bool = False
    jit_compile: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run, section by section (see the module's docstring)."""
    data: DataSettings
    run: RunSettings
    model: ModelSettings = ModelSettings()
    head: HeadSettings = HeadSettings()
    fine_tuning: FineTuningSettings = FineTuningSettings()
    optimization: OptimizationSettings = OptimizationSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    evaluation: EvaluationSettings = EvaluationSettings()

    @classmethod
    def from_flags(cls, flags):
        """The config of `fgtf.train.build_parser()`'s parsed flags (a head's
        options: those its `Head.flags` declare)."""
        given = vars(flags)
        sections = {}
        for section in dataclasses.fields(cls):
            if section.type is HeadSettings:
                continue
            sections[section.name] = section.type(**{field.name: given[field.name]
                                                     for field in dataclasses.fields(section.type)})
        head = given["head"]
        sections["head"] = HeadSettings(head, {flag.dest: given[flag.dest] for flag in head_flags(head)})
        return cls(**sections)

    def to_dict(self):
        """{section: {field: value}}, JSON-able (tuples become lists)."""
        return dataclasses.asdict(self)

    def changed(self):
        """{section: {field: value}} of the fields that differ from their
        defaults (the locations included), JSON-able: the settings a caller
        chose, unchanged when later fgtf versions add settings with defaults."""
        chosen = {}
        for section in dataclasses.fields(self):
            values = getattr(self, section.name)
            differing = {field.name: getattr(values, field.name) for field in dataclasses.fields(values)
                         if field.default is dataclasses.MISSING or getattr(values, field.name) != _default(field)}
            if differing:
                chosen[section.name] = json.loads(json.dumps(differing))
        return chosen

    @classmethod
    def from_dict(cls, data, source="the config"):
        """The config of `to_dict()`'s output (read back from JSON). UserError,
        naming `source`, for a section or field this fgtf does not know."""
        if not isinstance(data, dict):
            raise UserError(f"{source} is not a training config (a JSON object of sections)")
        missing = sorted({"data", "run"} - set(data))
        if missing:
            raise UserError(f"{source} has no {' or '.join(missing)} section")
        sections = {}
        for section in dataclasses.fields(cls):
            values = data.get(section.name, {})
            known = {field.name: field for field in dataclasses.fields(section.type)}
            unknown = sorted(set(values) - set(known)) if isinstance(values, dict) else ["(not an object)"]
            if unknown:
                raise UserError(f"{source}: section {section.name} has settings this fgtf does not know: "
                                f"{', '.join(unknown)}")
            sections[section.name] = section.type(**{name: _as_field_value(known[name], value)
                                                     for name, value in values.items()})
        return cls(**sections)

    def replace(self, **changes):
        """A copy with fields changed, each given as `section__field=value`
        (e.g. `data__image_size=448`)."""
        by_section = {}
        for key, value in changes.items():
            section, _, name = key.partition("__")
            by_section.setdefault(section, {})[name] = value
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)
                                            for section, values in by_section.items()})


def config_defaults():
    """{flag destination: default} of every setting: the sections' fields and
    every head's own flags (`fgtf.train`'s parser defaults)."""
    from fgtf.models.heads import HEAD_CHOICES

    defaults = {field.name: field.default for section in dataclasses.fields(TrainConfig)
                if section.type is not HeadSettings for field in dataclasses.fields(section.type)
                if field.default is not dataclasses.MISSING}
    defaults["head"] = HeadSettings.head
    for head in HEAD_CHOICES:
        defaults.update({flag.dest: flag.default for flag in head_flags(head)})
    return defaults


def head_flags(head):
    """The `fgtf.models.heads.HeadFlag`s head `head` declares (none: ())."""
    from fgtf.models.heads import NO_HEAD, head_record

    return () if head == NO_HEAD else head_record(head).flags


def _default(field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _as_field_value(field, value):
    """A JSON value as the field holds it: lists back to (nested) tuples."""
    if isinstance(field.default, tuple) and isinstance(value, list):
        return tuple(tuple(item) if isinstance(item, list) else item for item in value)
    return value
