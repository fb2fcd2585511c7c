"""Alim'Confiance-like inspections around Paris, built from core types, for the current-state view's tests.

Keys and groups follow producers/datasets/alimconfiance.py: key `numero|siret|date`, group `siret|address`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.geo import AdminCodes, Point, haversine_m
from core.model import Record
from core.profiles import ALIMCONFIANCE, RATING_LABELS

DATASET = ALIMCONFIANCE.dataset
PARIS = Point(48.8566, 2.3522)
NAMES = ("Boulangerie Saint-Honoré", "Le Petit Zinc", "Sushi Bastille", "Chez Fatou", "Pizzeria Da Marco",
         "Boucherie des Martyrs", "Café de la Mairie", "Le Relais du Marais", "Fromagerie Quatrehomme",
         "Cantine Belleville", "Traiteur Lyonnais", "Restaurant Le Progrès")
ACTIVITIES = ("Restaurant", "Boulangerie-Pâtisserie", "Boucherie-Charcuterie", "Traiteur", "Restauration rapide")
STREETS = ("rue de Rivoli", "boulevard Voltaire", "rue Oberkampf", "avenue de Clichy", "rue du Faubourg Saint-Denis")


def inspection(siret: str, date: str, rating: int | None, *, point: Point | None = PARIS, number: str = "1",
               name: str = "Le Petit Zinc", address: str = "12 rue Oberkampf", postcode: str = "75011") -> Record:
    """One inspection of the establishment `siret|address`."""
    fields = {
        "name": name, "siret": siret, "address": address, "postcode": postcode, "commune": "Paris",
        "numero_inspection": f"{number}-{siret[-4:]}", "date_inspection": date,
        "activity": "Restaurant", "rating_label": None if rating is None else RATING_LABELS[rating]["fr"],
        "com_code": "75111", "dep_code": "75", "reg_code": "11", "code_ua": None,
        "geo": None if point is None else f"{point.lat:.6f},{point.lon:.6f}",
    }
    admin = AdminCodes(commune="75111", postcode=postcode, departement="75", region="11")
    return Record(DATASET, f"{fields['numero_inspection']}|{siret}|{date}", fields, ALIMCONFIANCE.fingerprint(fields),
                  point, admin, f"{siret}|{address.lower()}", rating)


@dataclass(frozen=True, slots=True)
class Place:
    siret: str
    name: str
    address: str
    point: Point | None


def places(count: int, rng: random.Random, *, without_point: float = 0.04) -> list[Place]:
    """Establishments scattered over Paris (within ~6 km of the centre), a few without coordinates."""
    found = []
    for i in range(count):
        point = Point(round(PARIS.lat + rng.uniform(-0.05, 0.05), 6), round(PARIS.lon + rng.uniform(-0.08, 0.08), 6))
        address = f"{rng.randint(1, 180)} {rng.choice(STREETS)}"
        found.append(Place(f"{rng.randint(10**13, 10**14 - 1)}", f"{rng.choice(NAMES)} {i}", address,
                           None if rng.random() < without_point else point))
    return found


def inspections(place: Place, dates: list[str], rng: random.Random) -> list[Record]:
    """One inspection of `place` per date, each with its own rating (sometimes unreadable)."""
    return [inspection(place.siret, date, rng.choice((1, 1, 2, 2, 2, 3, 4, None)), point=place.point,
                       number=str(n), name=place.name, address=place.address) for n, date in enumerate(dates)]


def latest(records: list[Record]) -> dict[str, Record]:
    """Brute force: each entity's record with the highest (date, key)."""
    shown: dict[str, Record] = {}
    for record in records:
        seen = shown.get(record.entity)
        if seen is None or (ALIMCONFIANCE.order(record), record.key) >= (ALIMCONFIANCE.order(seen), seen.key):
            shown[record.entity] = record
    return shown


def brute_near(shown: dict[str, Record], center: Point, radius_m: float, *, max_rating: int | None,
               limit: int) -> list[tuple[str, float]]:
    """Brute force `near`: (record key, distance) for every shown record, filtered and sorted by hand."""
    hits = []
    for entity, record in shown.items():
        if record.point is None or (max_rating is not None and (record.rating is None or record.rating > max_rating)):
            continue
        distance = haversine_m(center, record.point)
        if distance <= radius_m:
            hits.append((distance, entity, record.key))
    return [(key, distance) for distance, _, key in sorted(hits)[:limit]]
