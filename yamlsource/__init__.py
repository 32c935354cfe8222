"""The position-keeping YAML reader for config and rule files; imports no Warden package.

    doc = read_yaml(text, "config/warden.yaml")      # YamlError(file, line, column, message)
    if isinstance(doc, YamlMap):
        line, column = key_position(doc, "chain")     # 1-based
    line, column = position_of(doc, ("executor", "fees", 0))   # deepest part present

Mappings are `YamlMap`, sequences `YamlSeq` (ruamel's round-trip types, which remember
where each key and item was written); scalars are plain Python values. Before anything is
built from it, the text is refused with FILE:LINE:COLUMN for control characters, tags
that would construct objects (anything beyond str/int/float/bool/null/map/seq), alias
bombs and cycles, and nesting deeper than `Limits.max_depth` (guards.py). libyaml, when
PyYAML has it, parses the text, ruamel when libyaml might read it otherwise (reader.py).
"""

from yamlsource.errors import YamlError
from yamlsource.guards import Limits
from yamlsource.positions import (
    Position,
    item_position,
    key_position,
    position_of,
    value_position,
)
from yamlsource.reader import YamlMap, YamlSeq, read_yaml

__all__ = [
    "Limits",
    "Position",
    "YamlError",
    "YamlMap",
    "YamlSeq",
    "item_position",
    "key_position",
    "position_of",
    "read_yaml",
    "value_position",
]
