"""resolve_region: countries, grid zones, cloud regions and the world average, and the closest names when unknown."""

from __future__ import annotations

import dataclasses

import pytest

from wattwise.carbon.regions import Region, RegionResolver, resolve_region
from wattwise.carbon.static import StaticIntensityTable
from wattwise.errors import ConfigError, UnknownRegionError


@pytest.fixture(scope="module")
def resolver() -> RegionResolver:
    return RegionResolver()


@pytest.mark.parametrize("text", ["DE", "de", "DEU", "Germany", " germany "])
def test_country_by_code_or_name(resolver: RegionResolver, text: str) -> None:
    region = resolver.resolve(text)
    assert (region.code, region.kind, region.country, region.grid_zone) == ("DE", "country", "DE", "DE")
    assert region.intensity == StaticIntensityTable().lookup("DE")
    assert region.intensity_basis == "country"
    assert region.pue is None and region.wue_l_per_kwh is None  # the caller keeps its defaults
    assert region.offsite_water_l_per_kwh is not None and "Macknick" in (region.offsite_water_source or "")


def test_zone_falls_back_to_its_countrys_annual_figure(resolver: RegionResolver) -> None:
    region = resolver.resolve("us-cal-ciso")
    assert (region.code, region.kind, region.country, region.grid_zone) == ("US-CAL-CISO", "zone", "US", "US-CAL-CISO")
    us = StaticIntensityTable().lookup("US")
    assert region.intensity.intensity_g_per_kwh == us.intensity_g_per_kwh and region.intensity.region == "US-CAL-CISO"
    assert "US's annual country figure" in region.note and region.intensity.note == region.note


@pytest.mark.parametrize("text", ["GB", "SE", "NO", "BR", "FR"])
def test_zone_keys_that_are_country_codes_resolve_as_countries(resolver: RegionResolver, text: str) -> None:
    region = resolver.resolve(text)
    assert region.kind == "country" and region.grid_zone == text


@pytest.mark.parametrize(
    ("text", "code", "country", "zone"),
    [
        ("aws:eu-west-1", "aws:eu-west-1", "IE", "IE"),
        ("AWS:US-WEST-1", "aws:us-west-1", "US", "US-CAL-CISO"),
        ("aws:us-east-1", "aws:us-east-1", "US", "US-MIDA-PJM"),
        ("gcp:europe-west4", "gcp:europe-west4", "NL", "NL"),
        ("google:us-central1", "gcp:us-central1", "US", "US-MIDW-MISO"),
        ("azure:westeurope", "azure:westeurope", "NL", "NL"),
        ("Microsoft:SwedenCentral", "azure:swedencentral", "SE", "SE-SE3"),
        ("westeurope", "azure:westeurope", "NL", "NL"),  # a bare name only one provider uses
        ("europe-west4", "gcp:europe-west4", "NL", "NL"),
    ],
)
def test_cloud_regions(resolver: RegionResolver, text: str, code: str, country: str, zone: str) -> None:
    region = resolver.resolve(text)
    assert (region.code, region.kind, region.country, region.grid_zone) == (code, "cloud", country, zone)
    provider, _, name = code.partition(":")
    assert region.cloud_provider == provider and region.cloud_region == name
    assert region.pue is not None and region.pue >= 1.0 and region.pue_source
    assert region.location and region.note.startswith("region mapping:")


def test_cloud_pue_and_wue_come_from_the_providers_table(resolver: RegionResolver) -> None:
    aws = resolver.resolve("aws:eu-west-1")
    assert aws.pue == 1.15 and aws.wue_l_per_kwh == 0.18 and "2023" in (aws.pue_source or "")
    azure = resolver.resolve("azure:westeurope")
    assert azure.pue == 1.18 and azure.wue_l_per_kwh == 0.30
    gcp = resolver.resolve("gcp:europe-west4")
    assert gcp.pue == 1.10 and gcp.wue_l_per_kwh is None and "not published" in (gcp.wue_source or "")


def test_gcp_uses_googles_own_figure_and_says_so(resolver: RegionResolver) -> None:
    region = resolver.resolve("gcp:europe-west4")
    assert region.intensity_basis == "provider" and region.intensity.intensity_g_per_kwh == 236
    assert region.intensity.year == 2023 and "Google Cloud published grid intensity" in region.intensity.source
    other = resolver.resolve("aws:eu-west-1")
    assert other.intensity_basis == "country" and "IE annual country figure" in other.intensity.note


def test_cloud_region_carries_location_and_coordinates(resolver: RegionResolver) -> None:
    region = resolver.resolve("azure:swedencentral")
    assert region.location == "Gavle" and region.latitude == pytest.approx(60.67488)
    assert region.longitude == pytest.approx(17.14127)
    assert resolver.resolve("aws:sa-east-1").latitude is None  # a published coordinate was wrong: left blank


@pytest.mark.parametrize("text", [None, "", "  ", "world", "WORLD"])
def test_nothing_means_the_world_average_flagged(resolver: RegionResolver, text: str | None) -> None:
    region = resolver.resolve(text)
    assert region.kind == "world" and region.is_world and region.code == "WORLD"
    assert region.country is None and region.grid_zone is None and region.intensity_basis == "world"
    assert region.intensity == StaticIntensityTable().world_average() and "no region set" in region.note
    assert region.offsite_water_l_per_kwh is not None and 0.5 < region.offsite_water_l_per_kwh < 3


def test_unknown_cloud_region_suggests_the_providers_close_names() -> None:
    with pytest.raises(UnknownRegionError) as err:
        resolve_region("aws:eu-west-9")
    message = str(err.value)
    assert "closest: aws:eu-west-1, aws:eu-west-2, aws:eu-west-3." in message and "\n" not in message
    assert isinstance(err.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Germny", "DE (Germany)"),
        ("US-CAL-CISX", "US-CAL-CISO"),
        ("westeurop", "azure:westeurope"),
        ("gcp:europe-west44", "gcp:europe-west4"),
    ],
)
def test_unknown_names_list_the_closest_across_kinds(text: str, expected: str) -> None:
    with pytest.raises(UnknownRegionError, match=r"closest: .*" + expected.replace("(", r"\(").replace(")", r"\)")):
        resolve_region(text)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRegionError, match="unknown cloud provider 'oracle', use one of aws, gcp, azure"):
        resolve_region("oracle:us-ashburn-1")


def test_nonsense_says_what_is_accepted() -> None:
    with pytest.raises(UnknownRegionError, match=r"no close match\. Use an ISO country code"):
        resolve_region("qqqqqqqq")


def test_region_is_frozen_and_names_cover_every_kind(resolver: RegionResolver) -> None:
    region = resolver.resolve("DE")
    assert isinstance(region, Region)
    with pytest.raises(dataclasses.FrozenInstanceError):
        region.code = "FR"  # type: ignore[misc]
    names = resolver.names()
    assert {"DE", "US-CAL-CISO", "aws:eu-west-1", "gcp:europe-west4", "azure:westeurope"} <= set(names)


def test_resolver_accepts_an_injected_table() -> None:
    table = StaticIntensityTable(
        "alpha2,alpha3,name,year,intensity_g_per_kwh,generation_twh_2022\nDE,DEU,Germany,2024,1,1\n"
    )
    assert RegionResolver(table).resolve("DE").intensity.intensity_g_per_kwh == 1
