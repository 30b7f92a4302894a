import importlib.resources

import pytest

from schedules.zones import UnknownZoneError, is_valid_zone, load_zone, offset_minutes_at, offset_segments, zone_names
from tests.schedules.helpers import utc


def test_zone_list_comes_from_tzdata():
    names = zone_names()
    assert {"Europe/Vienna", "America/Bogota", "Asia/Kathmandu", "Asia/Kolkata", "UTC"} <= names
    listed = importlib.resources.files("tzdata").joinpath("zones").read_text().split()
    assert names == frozenset(listed)
    assert not is_valid_zone("Europe/Viena")
    assert not is_valid_zone("../../etc/passwd")
    assert not is_valid_zone("")


def test_load_zone_is_cached_and_rejects_unknown_names():
    assert load_zone("Asia/Kathmandu") is load_zone("Asia/Kathmandu")
    assert load_zone("Asia/Kathmandu").key == "Asia/Kathmandu"
    with pytest.raises(UnknownZoneError):
        load_zone("Mars/Olympus_Mons")


def test_loader_reads_the_tzdata_package_files(monkeypatch):
    import zoneinfo

    import schedules.zones as zones

    opened = []

    class OnlyFromFile:
        @staticmethod
        def from_file(fh, key=None):
            opened.append(key)
            return zoneinfo.ZoneInfo.from_file(fh, key=key)

        def __new__(cls, *a, **k):  # a lookup by name would search the host's TZPATH
            raise AssertionError("ZoneInfo(key) must not be used")

    load_zone.cache_clear()
    monkeypatch.setattr(zones, "ZoneInfo", OnlyFromFile)
    try:
        assert offset_minutes_at("Asia/Kathmandu", utc("2027-01-01T00:00:00Z")) == 345
        assert opened == ["Asia/Kathmandu"]
    finally:
        monkeypatch.undo()
        load_zone.cache_clear()


@pytest.mark.parametrize("zone, before, after, instant", [
    ("Europe/Vienna", 60, 120, "2027-03-28T01:00:00Z"),       # CET -> CEST
    ("America/Santiago", -180, -240, "2027-04-04T03:00:00Z"),  # southern autumn
    ("Australia/Sydney", 660, 600, "2027-04-03T16:00:00Z"),    # AEDT -> AEST
])
def test_dst_transitions_to_the_minute(zone, before, after, instant):
    t = utc(instant)
    assert offset_minutes_at(zone, t - 1) == before
    assert offset_minutes_at(zone, t) == after
    segs = offset_segments(zone, t - 3000, t + 3000)
    assert segs == [(t - 3000, t, before), (t, t + 3000, after)]


@pytest.mark.parametrize("zone, offset", [("Asia/Kolkata", 330), ("Asia/Kathmandu", 345)])
def test_fractional_offsets(zone, offset):
    start = utc("2027-03-01T00:00:00Z")
    assert offset_segments(zone, start, start + 14 * 1440) == [(start, start + 14 * 1440, offset)]
