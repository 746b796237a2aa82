"""The public names of the runtime and of its update package are pinned: adding or removing one is a decision."""

from __future__ import annotations

import hardpoint_runtime
import hardpoint_runtime.update

RUNTIME = {
    "AdapterBinding", "Candidate", "ConfigError", "ConfigProblem", "Daemon", "Event", "EventRecord",
    "HardpointRuntimeError", "InterfaceInfo", "ManagementError", "ManagementSection", "MetricsSection", "ModuleEntry",
    "ModuleRecord", "ModuleStatus", "PlatformConfig", "PlatformControl", "PlatformHealth", "PlatformSection",
    "Resolution", "ResolutionError", "RestartDecision", "RestartPolicy", "StateError", "StateStore",
    "SupervisionSection", "TopicInfo", "Unmet", "UnmetRequirement", "WorkerError", "load_config", "parse_config",
    "resolve",
}  # fmt: skip
UPDATE = {
    "Breakage", "DirectoryFetcher", "Expiry", "FetchError", "InstallError", "IntegrityError", "JournalEntry",
    "MANIFEST_FILE", "MODULE_GROUP", "ManifestMismatchError", "MetadataExpiredError", "MetadataVerificationError",
    "ModuleRelease", "ModuleRollbackError", "ModuleWheel", "Recovery", "ReleaseError", "RollbackError", "STEPS",
    "TargetNotFoundError", "UnmetRequirementError", "UpdateClient", "UpdateError", "UpdateRepository",
    "VerifiedTarget", "breakages", "initialize_trust", "install_wheel", "precheck", "read_module_wheel", "recover",
    "sweep_partials", "target_path_for",
}  # fmt: skip


def test_runtime_names_are_pinned() -> None:
    assert set(hardpoint_runtime.__all__) == RUNTIME
    assert all(hasattr(hardpoint_runtime, name) for name in RUNTIME)


def test_update_names_are_pinned() -> None:
    assert set(hardpoint_runtime.update.__all__) == UPDATE
    assert all(hasattr(hardpoint_runtime.update, name) for name in UPDATE)
