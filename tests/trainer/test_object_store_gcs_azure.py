"""gs:// and abfs[s]:// as the pods reach them: real servers on loopback (gcp-storage-emulator, Azurite) and
credentials only from the environment (the storage Secret's keys): for GCS a service-account key's JSON in
GOOGLE_SERVICE_ACCOUNT_KEY, whose tokens a loopback stand-in for Google's token service signs off (the emulator has
none); for Azure a connection string whose key Azurite checks. `kubetune validate-data` reads data and a model folder's tokenizer, and fails in one line on a
missing object or refused credentials. (The trainer reading from each store: test_object_store_inputs.py.)"""

import json
import subprocess


from helpers.data import chat
from helpers.object_stores import (  # noqa: F401  (azure_env, gcs_env and gcs_key are fixtures)
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    BUCKET,
    CONTAINER,
    azure_env,
    azure_secret_env,
    gcs_env,
    gcs_key,
    service_account_key,
    upload,
    validate_data,
)

GCS = f"gs://{BUCKET}"
AZURE = f"abfss://{CONTAINER}@{AZURITE_ACCOUNT}.dfs.core.windows.net"  # as Databricks and Spark write it


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line validate-data printed for a location it could not read (then its count of problems)."""
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    problem, summary = [line for line in output.splitlines() if line.strip()]
    assert summary == "invalid data: 1 problem(s)", output
    return problem


def test_validate_data_reads_jsonl_and_a_tokenizer_on_gs_with_a_service_account_key(tmp_path, tiny_model_dir, gcs_key):
    env, _ = gcs_key
    data = tmp_path / "chat"
    data.mkdir()
    (data / "part-1.jsonl").write_text(json.dumps(chat("What is 2 plus 2?", "4")) + "\n")
    (data / "part-2.jsonl").write_text(json.dumps(chat("Hi", "Hello")) + "\n" + json.dumps(chat("x", "y")) + "\n")
    upload(data, f"{GCS}/validate/chat")
    upload(tiny_model_dir("llama"), f"{GCS}/models/tiny-llama-tokenizer")

    staging = {"KUBETUNE_STAGING_DIR": str(tmp_path / "staging")}
    result = validate_data(f"{GCS}/validate/chat", "--model", f"{GCS}/models/tiny-llama-tokenizer", env={**env, **staging})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: 3 valid CHAT_COMPLETION examples in {GCS}/validate/chat" in result.stdout
    assert "tokens per example" in result.stdout
    (staged,) = (tmp_path / "staging").iterdir()
    assert not list(staged.glob("*.safetensors"))  # config and tokenizer, no weights


def test_gs_missing_object_and_refused_or_malformed_keys_fail_in_one_line(tmp_path, gcs_key):
    env, key = gcs_key
    missing = error_line(validate_data(f"{GCS}/nothing/here.jsonl", env=env))
    assert f"{GCS}/nothing/here.jsonl" in missing and "no such file or folder" in missing

    stranger, _ = service_account_key(token_uri=key["token_uri"])  # a key the token service does not know
    refused = error_line(validate_data(f"{GCS}/nothing", env={**env, "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(stranger)}))
    assert "GOOGLE_SERVICE_ACCOUNT_KEY" in refused and "invalid_grant" in refused
    assert "PRIVATE KEY" not in refused

    malformed = {**env, "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(key)[:-40]}
    line = error_line(validate_data(f"{GCS}/nothing", env=malformed))
    assert "GOOGLE_SERVICE_ACCOUNT_KEY does not hold a service-account key file's JSON" in line
    assert "PRIVATE KEY" not in line and key["private_key_id"] + '"' not in line


def test_validate_data_reads_jsonl_and_a_tokenizer_on_abfss_and_abfs(tmp_path, tiny_model_dir, azure_env):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(chat("What is 2 plus 2?", "4")) + "\n" + json.dumps(chat("Hi", "Hello")) + "\n")
    upload(data, f"abfs://{CONTAINER}/validate/train.jsonl")
    upload(tiny_model_dir("llama"), f"abfs://{CONTAINER}/models/tiny-llama-tokenizer")

    staging = {"KUBETUNE_STAGING_DIR": str(tmp_path / "staging")}
    result = validate_data(f"{AZURE}/validate/train.jsonl", "--model", f"{AZURE}/models/tiny-llama-tokenizer", env={**azure_env, **staging})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: 2 valid CHAT_COMPLETION examples in {AZURE}/validate/train.jsonl" in result.stdout
    assert "tokens per example" in result.stdout

    short = validate_data(f"abfs://{CONTAINER}/validate", env=azure_env)
    assert short.returncode == 0 and f"OK: 2 valid CHAT_COMPLETION examples in abfs://{CONTAINER}/validate" in short.stdout


def test_abfs_missing_object_and_a_wrong_account_key_fail_in_one_line(azure_env):
    missing = error_line(validate_data(f"{AZURE}/nothing/here.jsonl", env=azure_env))
    assert f"{AZURE}/nothing/here.jsonl" in missing and "no such file or folder" in missing

    endpoint = azure_env["AZURE_STORAGE_CONNECTION_STRING"].partition("BlobEndpoint=")[2].rstrip(";").rsplit("/", 1)[0]
    wrong_key = "d3Jvbmcta2V5" + AZURITE_KEY[12:]
    refused = error_line(validate_data(f"{AZURE}/validate", env=azure_secret_env(endpoint, key=wrong_key)))
    assert f"{AZURE}/validate" in refused and "Server failed to authenticate the request" in refused
    assert wrong_key not in refused and "AccountKey" not in refused
