"""The GX File Data Context in ``gx/``: how it is built (once, committed) and how it is loaded.

Layout: one SQL datasource ``warehouse`` whose connection string is ``${ORDER_TRACKING_GX_WAREHOUSE_URL}``
(set from settings just before loading, so no URL or secret is ever written into ``gx/``), one
query asset standing for "the warehouse at as_of" (the rules name their own tables), and per check
one suite with exactly one expectation, one validation definition and one checkpoint whose actions
are: write exceptions, update Data Docs, email.

Imported lazily (it imports GX): DAG files and light CLI commands never pay for it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import great_expectations as gx
from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
from ruamel.yaml import YAML

import expectations_custom  # noqa: F401 - registers our expectation and action classes with GX
from expectations_custom import EXPECTATIONS
from expectations_custom.actions import (
    OrderTrackingDataDocsAction,
    OrderTrackingEmailAction,
    RecordExceptionsAction,
)
from order_tracking import db
from order_tracking.errors import StoreUnavailable, UserError
from order_tracking.settings import Settings

URL_ENV = "ORDER_TRACKING_GX_WAREHOUSE_URL"
# Fixed: every id in gx/ derives from it (stable_id); changing it changes them all.
ID_NAMESPACE = uuid.UUID("5c1f6f3e-8a4b-4d2e-9f1a-0d7e2b6c4a91")
UNCOMMITTED = "uncommitted"  # results and Data Docs: kept by build, ignored by git
DATASOURCE = "warehouse"
ASSET = "nightly_window"
BATCH_DEFINITION = "whole_window"
VALIDATION_RESULTS_LIMIT = 120
RESULTS_STORE_CLASS = {
    "module_name": "expectations_custom.data_docs.results_store",
    "class_name": "ValidationResultsStore",  # GX's name, our module: see results_store
}
SITE_BUILDER_CLASS = {
    "module_name": "expectations_custom.data_docs.site_builder",
    "class_name": "OrderTrackingSiteBuilder",
}
INDEX_RENDERER = {
    "module_name": "expectations_custom.data_docs.site_index",
    "class_name": "OrderTrackingSiteIndexPageRenderer",
}
INDEX_BUILDER_CLASS = {
    "module_name": "expectations_custom.data_docs.site_index",
    "class_name": "OrderTrackingSiteIndexBuilder",
}


@dataclass(frozen=True)
class Check:
    name: str  # CLI name, e.g. "missing_spath"
    suite: str
    checkpoint: str
    expectation_type: str


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


CHECKS: dict[str, Check] = {
    name: Check(name, f"order_tracking_{name}", f"order_tracking_{name}", _snake(cls.__name__))
    for name, cls in EXPECTATIONS.items()
}


def _expectation(name: str):
    cls = EXPECTATIONS[name]
    kwargs: dict = {"as_of": {"$PARAMETER": "as_of"}}
    if name == "extraction_count":
        kwargs["source_counts"] = {"$PARAMETER": "source_counts"}
    return cls(**kwargs)


def stable_id(*path: str) -> str:
    """The id of the GX object at ``path`` (its kind, then the names leading to it), e.g.
    ``stable_id("suite", "order_tracking_missing_spath")``.

    GX gives every object a random uuid4 when it is added; ids derived from names make a rebuild
    of an unchanged project byte-identical, so ``git diff gx/`` shows only real changes.
    """
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(path)))


def build(root: Path) -> None:
    """(Re)generate the committed part of the GX project under ``root`` (the folder that holds ``gx/``).

    Built whole in a scratch folder, then swapped in: ``gx/uncommitted/`` (every stored validation
    result and the Data Docs) is left alone, and the output depends on this code only, never on
    what uncommitted/ holds. Two builds of the same code write the same bytes.
    """
    with tempfile.TemporaryDirectory(prefix="gx_build_") as scratch:
        built = Path(scratch) / "gx"
        _build_into(built)
        _swap_committed(root / "gx", built)


def _swap_committed(gx_dir: Path, built: Path) -> None:
    """Replace everything in ``gx_dir`` but uncommitted/ by the committed part of ``built``.

    Old entries go first, so a suite or checkpoint that the code no longer makes does not linger.
    """
    gx_dir.mkdir(parents=True, exist_ok=True)
    for old in gx_dir.iterdir():
        if old.name == UNCOMMITTED:
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    for new in built.iterdir():
        if new.name != UNCOMMITTED:
            shutil.move(new, gx_dir / new.name)


def _seed_context_id(gx_dir: Path) -> None:
    """Make the data context id name-derived.

    No API sets it: GX takes it from the expectations store's backend id file and, when that file
    is missing, writes a random uuid4 there while the context starts (before any call of ours).
    Written first, GX reads it and puts the same id in great_expectations.yml.
    """
    id_file = gx_dir / "expectations" / ".ge_store_backend_id"
    id_file.parent.mkdir(parents=True)
    id_file.write_text(f"store_backend_id = {stable_id('data_context')}\n", encoding="utf-8")


def _build_into(gx_dir: Path) -> None:
    """Create the GX project in the new folder ``gx_dir`` (GX scaffolds it)."""
    _seed_context_id(gx_dir)
    # GX test-connects while adding the datasource: to an in-memory SQLite, whatever the
    # environment says; the stored config keeps only the ${...} reference.
    context = gx.get_context(
        mode="file", context_root_dir=str(gx_dir), runtime_environment={URL_ENV: "sqlite://"}
    )
    # No usage analytics from a production data pipeline (and none can leave a closed network).
    context.enable_analytics(False)
    # Progress bars on stderr are noise in Airflow logs and the CLI.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    sites = context.variables.data_docs_sites
    # GX's static files (4 MB) are copied once per GX version, not on every build.
    sites["local_site"].update(SITE_BUILDER_CLASS)
    # The index page reads every stored result on every rebuild (~2 ms each, issue 6): list the
    # newest 30 nights of 4 checks; older results stay in uncommitted/validations.
    sites["local_site"]["site_index_builder"]["validation_results_limit"] = VALIDATION_RESULTS_LIMIT
    # It lists the site's pages fast (site_pages): a year of kept pages is listed on every build.
    sites["local_site"]["site_index_builder"].update(INDEX_BUILDER_CLASS)
    # The home page links the health page (expectations_custom.data_docs.site_index).
    sites["local_site"]["site_index_builder"]["renderer"] = INDEX_RENDERER
    # No profiling results exist here: GX's profiling section would list the whole results store
    # on every build only to filter every key out. "None" is GX's spelling of "section off".
    sites["local_site"]["site_section_builders"] = {"profiling": "None"}
    context.variables.data_docs_sites = sites
    context.variables.save()
    # Ids: GX gives every object a random id when it is added and keeps an id that is set when the
    # object is saved again (update), so each one below is added, renamed by stable_id, then saved.
    # References (a validation definition's suite and batch definition, a checkpoint's validation
    # definitions) are written from the objects, hence the order.
    source = context.data_sources.add_sql(name=DATASOURCE, connection_string="${" + URL_ENV + "}")
    asset = source.add_query_asset(name=ASSET, query="SELECT 1 AS batch_marker")
    batch_definition = asset.add_batch_definition_whole_table(BATCH_DEFINITION)
    source.id = uuid.UUID(stable_id("datasource", DATASOURCE))
    asset.id = uuid.UUID(stable_id("asset", DATASOURCE, ASSET))
    batch_definition.id = uuid.UUID(stable_id("batch_definition", DATASOURCE, ASSET, BATCH_DEFINITION))
    context.update_datasource(source)
    for check in CHECKS.values():
        suite = context.suites.add(gx.ExpectationSuite(name=check.suite))
        suite.add_expectation(_expectation(check.name))
        suite.id = stable_id("suite", check.suite)
        for expectation in suite.expectations:
            expectation.id = stable_id("expectation", check.suite, expectation.expectation_type)
        suite.save()
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.suite, data=batch_definition, suite=suite)
        )
        validation.id = stable_id("validation_definition", check.suite)
        validation.save()
        actions = [OrderTrackingDataDocsAction(name="update_data_docs")]
        if check.name != "extraction_count":  # Test 0 writes no exception rows (spec)
            actions.insert(0, RecordExceptionsAction(name="record_exceptions"))
        actions.append(OrderTrackingEmailAction(name="email_on_failure"))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=check.checkpoint,
                validation_definitions=[validation],
                actions=actions,
                result_format={"result_format": "SUMMARY"},
            )
        )
        checkpoint.id = stable_id("checkpoint", check.checkpoint)
        checkpoint.save()
    _use_our_results_store(gx_dir / "great_expectations.yml")


def _use_our_results_store(config_file: Path) -> None:
    """Name our results store class in the yml (GX's context API keeps the default class).

    Its keys are read without dateutil (expectations_custom.data_docs.results_store): the store is listed
    several times a run and grows by four results a night.
    """
    yaml = YAML(typ="rt")
    with open(config_file, encoding="utf-8") as f:
        config = yaml.load(f)
    config["stores"]["validation_results_store"].update(RESULTS_STORE_CLASS)
    with open(config_file, "w", encoding="utf-8") as f:
        yaml.dump(config, f)


def gx_url(settings: Settings) -> str:
    """The warehouse URL GX should use: the ATTACH (SQLite) and timeout parameters included."""
    url = db.engine_url(settings.warehouse_url, settings.warehouse_schemas, "warehouse", settings.timeouts)
    return url.render_as_string(hide_password=False)


def load(settings: Settings):
    """Load ``gx/`` and prove that every check has its one expectation of our type.

    GX silently drops expectations whose class is not registered; a suite with 0 expectations
    would then "pass". Here that is a loud error instead.
    """
    root = settings.gx_root
    if not (root / "great_expectations.yml").exists():
        raise UserError(f"no GX project at {root} (great_expectations.yml missing)")
    config = shared_store_config(settings) if settings.gx_store else None
    # context_root_dir, not project_root_dir: the latter means "<dir>/gx" and, for a folder
    # named otherwise, GX silently creates a new empty project there (issue 12). The datasource's
    # ${ORDER_TRACKING_GX_WAREHOUSE_URL} comes from this run's settings (GX's runtime config
    # variables), never from the process environment.
    context = gx.get_context(
        mode="file",
        context_root_dir=str(root),
        project_config=config,
        runtime_environment={URL_ENV: gx_url(settings)},
    )
    verify(context)
    return context


def load_or_local(settings: Settings) -> tuple[object, str | None]:
    """``load``; when the shared store is unusable, the local stores instead and the store's error.

    Findings matter more than their pages: the caller records them with the local stores, then
    reports the store's one-line error (exit 3 on the CLI, a failed task in Airflow).
    """
    try:
        return load(settings), None
    except StoreUnavailable as exc:
        return load(dataclasses.replace(settings, gx_store=None)), str(exc)


def shared_store_config(settings: Settings) -> DataContextConfig:
    """``gx/great_expectations.yml`` with the validation results and the Data Docs site moved to
    ORDER_TRACKING_GX_STORE_URL, in memory only: the file (and git) never sees a bucket or endpoint.

    Checks the bucket first (s3_store.StoreUnavailable, one line), because GX would otherwise
    only log a warning and fail later, inside a checkpoint.
    """
    from order_tracking.settings import DATA_DOCS_PREFIX, VALIDATIONS_PREFIX
    from order_tracking.stores import s3 as s3_store

    location, endpoint = settings.gx_store, settings.s3_endpoint_url
    s3_store.check_access(location, endpoint)
    with open(settings.gx_root / "great_expectations.yml", encoding="utf-8") as f:
        config = DataContextConfig.from_commented_map(YAML(typ="rt").load(f))  # as GX reads it
    stores = config.stores
    stores["validation_results_store"]["store_backend"] = s3_store.store_backend_config(
        location, endpoint, VALIDATIONS_PREFIX
    )
    site = config.data_docs_sites["local_site"]
    site["store_backend"] = s3_store.store_backend_config(
        location, endpoint, DATA_DOCS_PREFIX, data_docs=True
    )
    return config


def required_actions(check: Check) -> tuple[type, ...]:
    """The actions a check's checkpoint must run (``build`` adds exactly these)."""
    record = () if check.name == "extraction_count" else (RecordExceptionsAction,)
    return (*record, OrderTrackingDataDocsAction, OrderTrackingEmailAction)


def _stored_types(context, suite_name: str) -> list[str]:
    """Expectation types as written in the suite's JSON file (GX drops the unknown ones)."""
    path = Path(context.root_directory) / "expectations" / f"{suite_name}.json"
    try:
        data = json.loads(path.read_text())
        return [str(e.get("type")) for e in data.get("expectations", [])]
    except (OSError, ValueError, AttributeError):
        return []


def verify(context) -> None:
    """Every check has its one expectation of our type and the actions it must run.

    A suite that lost its expectation "passes" with nothing evaluated; a checkpoint that lost
    ``record_exceptions`` passes without writing a finding. Both are configuration errors.
    """
    lacking: list[str] = []
    for check in CHECKS.values():
        try:
            suite = context.suites.get(check.suite)
        except Exception as exc:
            raise UserError(f"GX suite {check.suite!r} cannot be loaded: {exc}") from None
        types = [e.expectation_type for e in suite.expectations]
        if types != [check.expectation_type]:
            unknown = [t for t in _stored_types(context, check.suite) if t != check.expectation_type]
            if unknown:
                raise UserError(
                    f"GX suite {check.suite!r} names unknown expectation type(s) "
                    f"{', '.join(map(repr, unknown))}; expected {check.expectation_type!r}"
                )
            raise UserError(
                f"GX suite {check.suite!r} holds {types or 'no expectations'}, expected "
                f"[{check.expectation_type!r}]: is the expectations_custom package importable?"
            )
        try:
            checkpoint = context.checkpoints.get(check.checkpoint)
        except Exception as exc:
            raise UserError(
                f"GX checkpoint {check.checkpoint!r} cannot be loaded: {db.short_reason(exc)}"
            ) from None
        missing = [
            cls.__fields__["type"].default
            for cls in required_actions(check)
            if not any(isinstance(a, cls) for a in checkpoint.actions)
        ]
        if missing:
            lacking.append(f"{check.checkpoint!r} lacks {', '.join(missing)}")
    if lacking:
        raise UserError(
            f"GX checkpoint(s) without a required action: {'; '.join(lacking)}; "
            "rebuild gx/ with scripts/build_gx_project.py"
        )
