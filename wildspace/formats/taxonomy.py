"""Species labels → scientific names for Camtrap DP (``scientificName``, ``taxonomic``).

Sources, best first:

- MegaDetector ``classification_category_descriptions`` taxonomy strings:
  SpeciesNet's ``uuid;class;order;family;genus;species;common name``, seven ranks
  ``kingdom;phylum;class;order;family;genus;species``, or six where the last is the binomial
  written without its space (``…;didelphidae;didelphisvirginiana``, as the ENA24 mapping
  does): that is split at a known camera-trap genus, else the taxon is named at family rank
  (never a guessed species).
- A label that is itself a binomial (``Equus quagga``).

The common name (a label like ``virginia_opossum``) becomes ``vernacularNames.eng``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
# genera common in camera-trap data sets, to split "didelphisvirginiana" into a binomial
GENERA = frozenset("""
acinonyx aepyceros alces alcelaphus antidorcas axis bos bubalus canis capra capreolus castor cephalophus
cervus connochaetes corvus crocuta cuniculus cyanocitta damaliscus dama dasyprocta dasypus didelphis
eira equus erethizon felis gallus genetta giraffa gorilla herpestes hippopotamus hippotragus homo hyaena
hystrix kobus leopardus lepus loxodonta lontra lycaon lynx madoqua marmota martes meleagris meles
mephitis muntiacus mustela myrmecophaga nasua odocoileus oryctolagus oryx ovis pan panthera papio
pecari phacochoerus potamochoerus procyon puma raphicerus rangifer redunca sciurus struthio sus
sylvilagus syncerus tamandua tamias tamiasciurus tapirus taurotragus tayassu tragelaphus turdus
urocyon ursus vulpes
""".split())
_BINOMIAL = re.compile(r"^[A-Z][a-z]+ [a-z][a-z-]+( [a-z][a-z-]+)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class Taxon:
    """A scientific name, its rank, higher ranks and common names (Camtrap DP ``taxonomic``)."""

    scientific_name: str
    rank: str | None = None
    higher: dict = field(default_factory=dict)  # kingdom … genus
    vernacular: dict = field(default_factory=dict)  # {"eng": "virginia opossum"}

    def as_taxonomic(self) -> dict:
        out: dict[str, Any] = {"scientificName": self.scientific_name}
        if self.rank:
            out["taxonRank"] = self.rank
        out.update({k: v for k, v in self.higher.items() if k in RANKS[:-1] and v})
        if self.vernacular:
            out["vernacularNames"] = dict(self.vernacular)
        return out


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:].lower()


def _common(label: str | None) -> dict:
    if not label:
        return {}
    name = re.sub(r"[_\s]+", " ", label).strip()
    return {"eng": name.lower()} if name and not _BINOMIAL.match(name) else {}


def parse_taxonomy(text: str, label: str | None = None) -> Taxon | None:
    """A :class:`Taxon` from a taxonomy string (formats in the module docstring), or None."""
    parts = [p.strip() for p in str(text).split(";")]
    common = label
    if parts and _UUID.match(parts[0]):  # SpeciesNet: uuid;class;order;family;genus;species;common
        parts = parts[1:]
        if len(parts) >= 6:
            common = parts[5] or label
        ranks = dict(zip(("class", "order", "family", "genus", "species"), parts[:5]))
    elif len(parts) >= 7:
        ranks = dict(zip(RANKS, parts[:7]))
    elif len(parts) == 6:
        ranks = dict(zip(RANKS[:5], parts[:5]))
        last = parts[5].lower().replace(" ", "")
        genus = next((g for g in sorted(GENERA, key=len, reverse=True)
                      if last.startswith(g) and len(last) > len(g) + 2), None)
        if genus:
            ranks.update(genus=genus, species=last[len(genus):])
        elif " " in parts[5].strip():
            g, s = parts[5].strip().split(" ", 1)
            ranks.update(genus=g, species=s)
    else:
        return None
    ranks = {k: v.strip().lower() for k, v in ranks.items() if v and v.strip()}
    higher = {k: _cap(v) for k, v in ranks.items() if k != "species"}
    if ranks.get("genus") and ranks.get("species"):
        return Taxon(f"{_cap(ranks['genus'])} {ranks['species']}", "species", higher, _common(common))
    for rank in ("genus", "family", "order", "class", "phylum", "kingdom"):
        if ranks.get(rank):
            return Taxon(_cap(ranks[rank]), rank, higher, _common(common))
    return None


def taxa_for(categories: Mapping[str, str], descriptions: Mapping[str, str] | None = None) -> dict[str, Taxon]:
    """``{category id: Taxon}`` for the classification categories that can be named."""
    out = {}
    for cid, label in categories.items():
        taxon = None
        if descriptions and cid in descriptions:
            taxon = parse_taxonomy(descriptions[cid], label)
        if taxon is None and _BINOMIAL.match(str(label).strip()):
            taxon = Taxon(str(label).strip(), "species")
        if taxon is not None:
            out[str(cid)] = taxon
    return out
