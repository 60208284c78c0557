"""What a Java server runs: software and version, its mods (Forge/NeoForge) and plugins (Query), if it says.

Evidence, strongest first:

- `forgeData` (Forge 1.13+, mcstatus decodes the compressed form of 1.18+) or `modinfo` (Forge 1.7-1.12,
  `{"type": "FML", "modList": [...]}`): Forge, or NeoForge when the mod list holds `neoforge`; the
  mod list with versions (py-mine/mcstatus#83, MCCTeam/Minecraft-Console-Client#100 show both shapes).
- `isModded: true` without forge data: NeoForge (it sends only that flag, py-mine/mcstatus#1202,
  neoforged/NeoForge#1048).
- the Query protocol's `plugins` field, `"<brand> on <version>: <plugin>; <plugin>"` (GameSpy4, e.g.
  `"Paper on 1.21.1-R0.1-SNAPSHOT: LuckPerms 5.4.141; EssentialsX 2.20.1"`; empty on vanilla).
- the status version name: `"Paper 1.21.1"`, `"Velocity 3.4.0-SNAPSHOT (git-...)"`,
  `"BungeeCord 1.8.x-1.21.x"`; a bare game version (`"1.21.1"`) is vanilla when nothing else says more.

A stock Fabric server answers exactly like vanilla; it is recognised only where its name appears (a version
name or Query brand naming Fabric). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcstatus.responses import ForgeData, JavaStatusResponse, QueryResponse


class Software(StrEnum):
    VANILLA = "vanilla"
    PAPER = "paper"
    PURPUR = "purpur"
    FOLIA = "folia"
    SPIGOT = "spigot"
    CRAFTBUKKIT = "craftbukkit"
    FORGE = "forge"
    NEOFORGE = "neoforge"
    FABRIC = "fabric"
    QUILT = "quilt"
    VELOCITY = "velocity"
    BUNGEECORD = "bungeecord"
    WATERFALL = "waterfall"


PROXIES = frozenset({Software.VELOCITY, Software.BUNGEECORD, Software.WATERFALL})
MOD_LOADERS = frozenset({Software.FORGE, Software.NEOFORGE, Software.FABRIC, Software.QUILT})

_BRANDS: dict[str, Software] = {
    "paper": Software.PAPER,
    "purpur": Software.PURPUR,
    "folia": Software.FOLIA,
    "spigot": Software.SPIGOT,
    "craftbukkit": Software.CRAFTBUKKIT,
    "bukkit": Software.CRAFTBUKKIT,
    "forge": Software.FORGE,
    "minecraftforge": Software.FORGE,
    "neoforge": Software.NEOFORGE,
    "fabric": Software.FABRIC,
    "quilt": Software.QUILT,
    "velocity": Software.VELOCITY,
    "bungeecord": Software.BUNGEECORD,
    "waterfall": Software.WATERFALL,
    "vanilla": Software.VANILLA,
}
_LOADER_MOD_IDS = frozenset({"minecraft", "mcp", "fml", "forge", "neoforge"})
"""Entries of a Forge mod list that are the game and the loader, not mods."""
_NO_VERSION_MARKERS = frozenset({"<not required for client>", "any", ""})
"""Forge mod markers that carry no version (server-only mods in the compressed form; FML2's `ANY`)."""

_GAME_VERSION = re.compile(r"\d+\.\d+(\.\d+)?([-_ ](pre|rc)[- ]?\d+)?|\d\dw\d\d[a-z]", re.IGNORECASE)
_NAMED_VERSION = re.compile(r"(?P<brand>[A-Za-z][A-Za-z-]*)[ /:]+v?(?P<version>\d[^\s()]*)(?:\s.*)?")
_QUERY_BRAND = re.compile(r"(?P<brand>[^:]+?)\s+on\s+(?:Bukkit\s+)?(?P<version>[^\s:]+)", re.IGNORECASE)
_BUKKIT_SUFFIX = re.compile(r"-R\d+(\.\d+)*(-SNAPSHOT)?$", re.IGNORECASE)
_PLUGIN = re.compile(r"(?P<name>.+?)\s+v?(?P<version>\d\S*)")


@dataclass(frozen=True, slots=True)
class Mod:
    name: str
    """The mod id, as the server lists it (`jei`)."""
    version: str | None


@dataclass(frozen=True, slots=True)
class Plugin:
    name: str
    version: str | None


@dataclass(frozen=True, slots=True)
class ServerSoftware:
    """What the answers say the server runs; `software` None when they do not say."""

    software: Software | None
    version: str | None = None
    """The software's own version where it is given (Forge `47.2.0`, Velocity `3.4.0-SNAPSHOT`); for
    vanilla and the Bukkit family, the game version."""
    minecraft_version: str | None = None
    """The game version, when the answers give one plainly (`1.21.1`)."""
    mods: tuple[Mod, ...] = field(default=())
    """Forge/NeoForge mods, the game and the loader left out."""
    mods_truncated: bool = False
    """Forge cut its list short (the compressed form has a size limit)."""
    plugins: tuple[Plugin, ...] = field(default=())
    modded: bool = False

    @property
    def is_proxy(self) -> bool:
        return self.software in PROXIES


def parse_plugins(raw: str) -> tuple[str | None, str | None, tuple[Plugin, ...]]:
    """The Query `plugins` field as (brand, version, plugins); (None, None, ()) when it is empty."""
    if not raw.strip():
        return None, None, ()
    head, _, tail = raw.partition(":")
    brand, version = head.strip(), None
    if found := _QUERY_BRAND.fullmatch(head.strip()):
        brand = found["brand"].strip()
        version = _BUKKIT_SUFFIX.sub("", found["version"])
    plugins: list[Plugin] = []
    for item in tail.split(";"):
        text = item.strip()
        if not text:
            continue
        if named := _PLUGIN.fullmatch(text):
            plugins.append(Plugin(name=named["name"], version=named["version"]))
        else:
            plugins.append(Plugin(name=text, version=None))
    return brand or None, version, tuple(plugins)


def _brand(name: str | None) -> Software | None:
    if name is None:
        return None
    return _BRANDS.get(name.strip().lower().replace(" ", ""))


def _mods(forge_data: ForgeData) -> tuple[Software, str | None, tuple[Mod, ...]]:
    ids = {mod.name.lower(): mod.marker for mod in forge_data.mods}
    loader = Software.NEOFORGE if "neoforge" in ids else Software.FORGE
    loader_version = ids.get(loader.value)
    mods = tuple(
        Mod(name=mod.name, version=_marker(mod.marker))
        for mod in forge_data.mods
        if mod.name.lower() not in _LOADER_MOD_IDS
    )
    return loader, _marker(loader_version) if loader_version is not None else None, mods


def _marker(marker: str) -> str | None:
    return None if marker.strip().lower() in _NO_VERSION_MARKERS else marker


def _from_version_name(version_name: str) -> tuple[Software | None, str | None, str | None]:
    """(software, its version, the game version) as far as the version name says."""
    name = re.sub(r"§.?", "", version_name).strip()
    if _GAME_VERSION.fullmatch(name):
        return Software.VANILLA, name, name
    if named := _NAMED_VERSION.fullmatch(name):
        software = _brand(named["brand"])
        if software is not None:
            version = named["version"]
            game = version if _GAME_VERSION.fullmatch(version) else None
            return software, version, game
    return None, None, None


def detect(
    version_name: str,
    *,
    forge_data: ForgeData | None = None,
    is_modded: bool = False,
    query_plugins: str | None = None,
    query_version: str | None = None,
) -> ServerSoftware:
    """What the server runs, from its status answer and (when it answered Query) the Query fields."""
    named, named_version, game = _from_version_name(version_name)
    if query_version and _GAME_VERSION.fullmatch(query_version.strip()):
        game = game or query_version.strip()
    brand, brand_version, plugins = parse_plugins(query_plugins or "")
    from_query = _brand(brand)
    if brand_version and _GAME_VERSION.fullmatch(brand_version):
        game = game or brand_version

    if forge_data is not None:
        loader, loader_version, mods = _mods(forge_data)
        return ServerSoftware(
            software=loader,
            version=loader_version,
            minecraft_version=game,
            mods=mods,
            mods_truncated=forge_data.truncated,
            plugins=plugins,
            modded=True,
        )
    if is_modded:
        # NeoForge says only `isModded: true`; another loader named in the version name wins.
        loader = named if named in MOD_LOADERS else Software.NEOFORGE
        version = named_version if named in MOD_LOADERS else None
        return ServerSoftware(
            software=loader, version=version, minecraft_version=game, plugins=plugins, modded=True
        )
    if from_query is not None and from_query is not Software.VANILLA:
        return ServerSoftware(
            software=from_query,
            version=brand_version,
            minecraft_version=game,
            plugins=plugins,
            modded=from_query in MOD_LOADERS,
        )
    if named is not None:
        return ServerSoftware(
            software=named,
            version=named_version,
            minecraft_version=game,
            plugins=plugins,
            modded=named in MOD_LOADERS,
        )
    if from_query is Software.VANILLA:
        return ServerSoftware(software=Software.VANILLA, version=game, minecraft_version=game)
    return ServerSoftware(software=None, minecraft_version=game, plugins=plugins)


def detect_from(status: JavaStatusResponse, query: QueryResponse | None = None) -> ServerSoftware:
    """`detect()` from mcstatus's answers: the status, and the Query answer when there is one."""
    plugins = str(query.raw.get("plugins", "")) if query is not None else None
    query_version = str(query.raw.get("version", "")) if query is not None else None
    return detect(
        str(status.version.name),
        forge_data=status.forge_data,
        is_modded=status.is_modded,
        query_plugins=plugins,
        query_version=query_version,
    )


def names(items: Sequence[Mod | Plugin]) -> list[str]:
    """`name version` of each mod or plugin, for a card or a log line."""
    return [f"{item.name} {item.version}" if item.version else item.name for item in items]
