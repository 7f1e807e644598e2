"""Reading an experiment directory's files, local or behind a storage URI (pyarrow.fs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs

from msa.data import remote_filesystem


class ExperimentFiles:
    """The files of one experiment directory, local or behind a storage URI (pyarrow.fs)."""

    def __init__(self, location: str | os.PathLike):
        location = str(location)
        if "://" in location:
            self.fs, root = remote_filesystem(location)
        else:
            self.fs, root = pyarrow.fs.LocalFileSystem(), str(Path(location).expanduser().resolve())
        self.location = location
        self.root = root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pyarrow.fs.LocalFileSystem)

    def path(self, relative: str = "") -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def listdir(self, relative: str = "") -> dict[str, bool]:
        """Entry name -> is a folder; empty for a missing folder."""
        selector = pyarrow.fs.FileSelector(self.path(relative), allow_not_found=True)
        return {
            info.base_name: info.type == pyarrow.fs.FileType.Directory
            for info in self.fs.get_file_info(selector)
        }

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(relative)) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def read_text(self, relative: str) -> str | None:
        data = self.read_bytes(relative)
        return None if data is None else data.decode(errors="replace")

    def read_json_object(self, relative: str) -> dict | None:
        """The JSON object in a file the experiment must hold whole (crossval.json, nested.json);
        None when it is missing. ValueError naming the file when it is not a JSON object."""
        text = self.read_text(relative)
        if text is None:
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.path(relative)}: not valid JSON ({error})") from error
        if not isinstance(parsed, dict):
            raise ValueError(f"{self.path(relative)}: expected a JSON object, got {type(parsed).__name__}")
        return parsed

    def read_json(self, relative: str) -> Any:
        """The parsed file; None when it is missing or not (yet) valid JSON."""
        text = self.read_text(relative)
        try:
            return None if text is None else json.loads(text)
        except json.JSONDecodeError:
            return None

    def write_bytes(self, relative: str, data: bytes) -> str:
        path = self.path(relative)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(path) as handle:
            handle.write(data)
        return path

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self.path(relative))

    def local_file(self, relative: str, folder: str) -> Path:
        """A local path to the file: itself when local, else a copy downloaded into ``folder``."""
        if self.is_local:
            return Path(self.path(relative))
        data = self.read_bytes(relative)
        if data is None:
            raise FileNotFoundError(self.path(relative))
        target = Path(folder) / relative.replace("/", "_")
        target.write_bytes(data)
        return target
