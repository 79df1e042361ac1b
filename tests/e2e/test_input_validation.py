"""End-to-end: the input-validation filter in a real Envoy, with the POST /users endpoint of
envoy-config/input-validation.yaml: `email` (format email), `password` (5-50 characters), `name`
(1-100), optional `age` (integer 13-150), no other members."""

import http.client
import json

import pytest

import harness

F = "palisade.input_validation"
JSON = {"content-type": "application/json"}
GOOD = {"email": "ada@example.com", "password": "correct horse", "name": "Ada Lovelace", "age": 36}


def post_users(e, body, headers=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return e.request("POST", "/users", body=data, headers={**JSON, **(headers or {})})


def violations(resp):
    assert resp.header("content-type") == "application/problem+json", resp.headers
    doc = resp.json()
    assert doc["status"] == resp.status
    return sorted((v["pointer"], v["rule"]) for v in doc["errors"])


@pytest.fixture
def users(envoy):
    return envoy("input-validation.yaml")


def test_valid_user_is_created_and_the_response_is_scrubbed(users):
    r = post_users(users, GOOD)
    assert r.status == 201
    created = r.json()
    assert created["email"] == "a@example.com"
    assert "password" not in created, "the upstream leaked a password; the filter must remove it"
    assert "secret" not in created["profile"] and created["profile"]["tags"] == ["x"]
    assert created["received_bytes"] == len(json.dumps(GOOD))
    assert r.header("content-length") in (None, str(len(r.body)))
    assert users.counter("palisade_input_validation_scrubbed_total") == 1


@pytest.fixture
def users_with_trailers(envoy):
    return envoy("input-validation.yaml", mutate=harness.enable_trailers)


def post_with_trailers(e, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return harness.request_with_trailers(e.port, "POST", "/users", {**JSON, **(headers or {})}, data, {"x-sum": "1"})


def test_trailers_do_not_carry_a_body_past_validation(users_with_trailers):
    # Trailers end the body: it is validated then, not let through with them.
    r = post_with_trailers(users_with_trailers, {**GOOD, "age": 12})
    assert r.status == 400, r.body
    assert violations(r) == [("/age", "minimum")]
    assert post_with_trailers(users_with_trailers, b"").status == 400, "no body at all before the trailers"
    r = post_with_trailers(users_with_trailers, GOOD)
    assert r.status == 201, r.body
    assert r.json()["received_bytes"] == len(json.dumps(GOOD))


def test_a_response_ending_in_trailers_is_still_scrubbed(users_with_trailers):
    r = post_with_trailers(users_with_trailers, GOOD, {"x-demo-trailers": "1"})
    assert r.status == 201, r.body
    created = r.json()
    assert "password" not in created, "the upstream leaked a password; the filter must remove it"
    assert "secret" not in created["profile"]
    assert users_with_trailers.counter("palisade_input_validation_scrubbed_total") == 1


@pytest.mark.parametrize("body, expected", [
    ({"password": "secret1", "name": "A"}, [("/email", "required")]),
    ({**GOOD, "email": "not-an-email"}, [("/email", "format")]),
    ({**GOOD, "password": "abcd"}, [("/password", "minLength")]),
    ({**GOOD, "password": "x" * 51}, [("/password", "maxLength")]),
    ({**GOOD, "name": ""}, [("/name", "minLength")]),
    ({**GOOD, "name": "n" * 101}, [("/name", "maxLength")]),
    ({**GOOD, "age": 12}, [("/age", "minimum")]),
    ({**GOOD, "age": 151}, [("/age", "maximum")]),
    ({**GOOD, "age": "20"}, [("/age", "type")]),
    ({**GOOD, "age": 20.5}, [("/age", "type")]),
    ({**GOOD, "admin": True}, [("/admin", "additionalProperties")]),
    ({"email": 5, "password": None, "name": []}, [("/email", "type"), ("/name", "type"), ("/password", "type")]),
])
def test_bad_bodies_get_400_problem_listing_each_violation(users, body, expected):
    r = post_users(users, body)
    assert r.status == 400
    assert violations(r) == expected
    assert r.json()["title"] == "Bad Request"


@pytest.mark.parametrize("name, email, password", [
    ("O'Brien", "o.brien+news@example.ie", "pässwörd"),
    ("Zoë Saldaña", "zoe@example.com", "12345"),
    ("日本 太郎", "taro@example.jp", "パスワード です"),
    ("Robert'); DROP TABLE users;--", "first.last+tag@sub.example.co.uk", "<script>x</script>"),
])
def test_legitimate_input_is_not_a_false_positive(users, name, email, password):
    assert post_users(users, {"email": email, "password": password, "name": name}).status == 201


def test_unicode_escapes_and_character_counting(users):
    # "Zo\u00eb" is 3 characters; a 50-character password of 2-byte letters is 100 bytes but valid.
    body = '{"email":"zoe@example.com","password":"' + "ö" * 50 + '","name":"Zo\\u00eb \\ud83d\\ude00"}'
    assert post_users(users, body.encode()).status == 201
    body = '{"email":"zoe@example.com","password":"' + "ö" * 51 + '","name":"Zoe"}'
    assert violations(post_users(users, body.encode())) == [("/password", "maxLength")]


def test_hostile_json_is_rejected_cleanly(users):
    assert post_users(users, b'{"email":"a@b.co","email":"c@d.co","password":"12345","name":"A"}').status == 400
    assert post_users(users, b'{"email":"a@b.co","password":"12345","name":"\xff\xfe"}').status == 400
    assert post_users(users, b'{"email": "a@b.co", "password": ').status == 400
    deep = "[" * 500 + "]" * 500
    assert post_users(users, deep.encode()).status == 400
    assert post_users(users, b"").status == 400
    # The filter is still healthy afterwards.
    assert post_users(users, GOOD).status == 201


def test_wrong_method_content_type_and_size(users):
    r = users.request("PUT", "/users", body=json.dumps(GOOD), headers=JSON)
    assert r.status == 405 and r.header("allow") == "POST"
    r = post_users(users, "email=a@b.co", headers={"content-type": "text/plain"})
    assert r.status == 415
    r = post_users(users, {**GOOD, "name": "n" * 5000})
    assert r.status == 413


def stream(port, path, chunks, content_type="application/json"):
    """POST with chunked transfer encoding; returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("content-type", content_type)
        conn.putheader("transfer-encoding", "chunked")
        conn.endheaders()
        try:
            for c in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(c), c))
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy answered early and closed
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_streamed_body_over_the_limit_is_refused_while_streaming(users, upstream):
    status, body = stream(users.port, "/users", [b'{"name":"' + b"n" * 1000] * 10 + [b'"}'])
    assert status == 413
    assert json.loads(body)["errors"][0]["rule"] == "maxSize"
    # Bodies that are only counted (no schema) stream through, and are refused past the limit.
    status, _ = stream(users.port, "/upload", [b"x" * 8192] * 4, content_type="application/octet-stream")
    assert status == 200
    status, _ = stream(users.port, "/upload", [b"x" * 8192] * 10, content_type="application/octet-stream")
    assert status == 413


def test_path_query_and_header_shape(users):
    assert users.get("/users/42").status == 200
    r = users.get("/users/abc")
    assert r.status == 400 and violations(r) == [("/id", "type")] or violations(r)[0][1] == "type"
    assert users.get("/users/0").status == 400
    assert users.get("/" + "a" * 3000).status == 414
    for bad in ["/static/%2e%2e/%2e%2e/etc/passwd", "/a/..;/admin", "/a/%252e%252e/x", "/a%00b", "/a/..%5c..%5cwin.ini"]:
        assert users.get(bad).status == 400, bad
    assert users.get("/search?" + "&".join(f"p{i}=1" for i in range(40))).status == 400
    many = {f"x-h{i}": "v" for i in range(70)}
    assert users.get("/", headers=many).status == 431
    assert users.counter("palisade_input_validation_rejected_total") >= 9


def test_report_only_mode_logs_counts_and_passes(envoy):
    with open(f"{harness.ROOT}/envoy-config/input-validation.yaml") as f:
        import yaml
        shipped = yaml.safe_load(f)
    cfg = json.loads(next(harness.wasm_filters(shipped))["typed_config"]["config"]["configuration"]["value"])
    cfg["mode"] = "report"
    e = envoy("input-validation.yaml", {F: cfg})
    r = post_users(e, {**GOOD, "age": 5})
    assert r.status == 201
    assert e.counter("palisade_input_validation_reported_total") == 1
    assert e.counter("palisade_input_validation_rejected_total") == 0
    assert "would reject" in e.logs()


def test_bad_config_is_refused_with_the_field_named(refused):
    code, logs = refused("input-validation.yaml", {F: {"rules": [{"match": {"path": {"exact": "/users"}},
                                                                 "body": {"schema": {"type": "strnig"}}}]}})
    assert code not in (None, 0)
    line = next(l for l in logs.splitlines() if "invalid configuration" in l)
    assert "rules[0].body.schema" in line, line
