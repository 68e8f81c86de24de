"""TLS: a lunamatch-match on tls+tcp:// with a CA (mutual TLS) and one
without, and the client's tls_ca / tls_cert / tls_key options.
Certificates are made with the openssl command line, as docs/rpc.md
shows."""
import contextlib
import logging
import re
import shutil
import subprocess

import pytest

import lunamatch

from conftest import SERVING, Service, free_port, side_env, wait_for

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True,
                   timeout=30)


def issue(d, name, ext):
    (d / (name + ".ext")).write_text(ext)
    openssl(d, "req", *EC, "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + name)
    openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt")


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory):
    """A directory with a CA, a server certificate for localhost, a client
    certificate, and another CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    openssl(d, "req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=lunamatch-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    issue(d, "server", "subjectAltName=DNS:localhost\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
    issue(d, "client", "extendedKeyUsage=clientAuth\n")
    openssl(d, "req", "-x509", *EC, "-keyout", "other-ca.key", "-out", "other-ca.crt",
            "-days", "2", "-subj", "/CN=another-ca",
            "-addext", "basicConstraints=critical,CA:TRUE")
    return d


@contextlib.contextmanager
def tls_server(stack, d, name, **ca):
    """A lunamatch-match on tls+tcp:// with the server certificate of d
    (and the environment entries ca, for mutual TLS), for its URL."""
    port = free_port()
    env = dict(side_env(stack.env, stack.tmp, name), **ca,
               LUNAMATCH_TLS_CERT=str(d / "server.crt"), LUNAMATCH_TLS_KEY=str(d / "server.key"))
    svc = Service(name, ["lunamatch-match", "--url", "tls+tcp://127.0.0.1:%d" % port,
                         "--http", "127.0.0.1:%d" % free_port()], env, stack.tmp)
    try:
        yield "tls+tcp://127.0.0.1:%d" % port
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def tls_match(stack, tls_certs):
    """Mutual TLS: clients need a certificate of the CA."""
    with tls_server(stack, tls_certs, "match-tls",
                    LUNAMATCH_TLS_CA=str(tls_certs / "ca.crt")) as url:
        yield url, tls_certs


@pytest.fixture(scope="module")
def tls_match_open(stack, tls_certs):
    """TLS without a CA: any client is served."""
    with tls_server(stack, tls_certs, "match-tls-open") as url:
        yield url


def test_no_tls_options_connects_unverified(tls_match_open, caplog):
    """Without TLS options the connection is encrypted but the server is not
    verified, as with the C client, and a warning says so."""
    with caplog.at_level(logging.WARNING, logger="lunamatch"):
        with lunamatch.Client(tls_match_open, timeout=2.0) as c:
            wait_for("TLS server serving", lambda: c.check().status == SERVING, timeout=30)
    assert any("not verified" in r.getMessage() and tls_match_open in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_mutual_tls(tls_match):
    url, d = tls_match
    with lunamatch.Client(url, timeout=2.0, tls_ca=str(d / "ca.crt"),
                          tls_cert=str(d / "client.crt"), tls_key=str(d / "client.key"),
                          tls_server_name="localhost") as c:
        wait_for("TLS server serving", lambda: c.check().status == SERVING, timeout=30)


def test_a_tls_scheme_in_upper_case_is_tls(tls_match):
    """nng takes a scheme in any case: TLS+TCP:// is a TLS endpoint, given
    its TLS files (they were not read, and it went unconfigured)."""
    url, d = tls_match
    upper = url.replace("tls+tcp://", "TLS+TCP://")
    assert upper != url
    with lunamatch.Client(upper, timeout=2.0, tls_ca=str(d / "ca.crt"),
                          tls_cert=str(d / "client.crt"), tls_key=str(d / "client.key"),
                          tls_server_name="localhost") as c:
        wait_for("TLS server serving", lambda: c.check().status == SERVING, timeout=30)


def test_client_without_certificate_is_refused(tls_match):
    url, d = tls_match
    with lunamatch.Client(url, timeout=0.5, tls_ca=str(d / "ca.crt"),
                          tls_server_name="localhost") as c:
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
    assert e.value.local


def test_server_of_another_ca_is_refused(tls_match):
    """The client verifies the server: a CA that did not sign the server's
    certificate, or a name the certificate does not carry, gets no
    connection."""
    url, d = tls_match
    cert = dict(tls_cert=str(d / "client.crt"), tls_key=str(d / "client.key"))
    # The control: the right CA and name connect within the same timeout.
    with lunamatch.Client(url, timeout=0.5, tls_ca=str(d / "ca.crt"),
                          tls_server_name="localhost", **cert) as c:
        wait_for("TLS server serving", lambda: c.check().status == SERVING, timeout=30)
    for ca, name in (("other-ca.crt", "localhost"), ("ca.crt", "match.elsewhere")):
        with lunamatch.Client(url, timeout=0.5, tls_ca=str(d / ca), tls_server_name=name,
                              **cert) as c:
            with pytest.raises(lunamatch.Unavailable):
                c.check()


def test_server_name_defaults_to_the_url_host(tls_match):
    """Without tls_server_name the certificate is checked against the URL's
    host, as the C client does: 127.0.0.1 is not a name the server's
    certificate (DNS:localhost) carries, so no connection is made. (With no
    name set at all, pynng 0.8 accepted any certificate of the CA.)"""
    url, d = tls_match
    assert url.startswith("tls+tcp://127.0.0.1:")
    with lunamatch.Client(url, timeout=0.5, tls_ca=str(d / "ca.crt"),
                          tls_cert=str(d / "client.crt"), tls_key=str(d / "client.key")) as c:
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
    assert e.value.local


@pytest.mark.parametrize("url, given, name", [
    ("tls+tcp://match.internal:7700", None, "match.internal"),
    ("tls+tcp://127.0.0.1:7700", None, "127.0.0.1"),
    ("tls+tcp://[::1]:7700", None, "::1"),
    ("tls+tcp6://Match.Internal:7700", None, "match.internal"),
    ("tls+tcp://match.internal:7700", "other.internal", "other.internal"),
])
def test_tls_server_name_of_each_endpoint(tls_certs, url, given, name):
    """The configuration each tls+ endpoint gets: its URL's host as the
    server name unless tls_server_name is given."""
    from lunamatch._rpc import TLSOptions
    ca = tls_certs / "ca.crt"
    opts = TLSOptions(str(ca), None, None, given, [url])
    assert opts.settings(url)["server_name"] == name
    assert opts.settings(url)["ca_string"] == ca.read_text()


def test_every_tls_endpoint_is_configured_with_its_own_host(tls_certs, monkeypatch):
    """The client hands each tls+ endpoint a configuration made for its URL."""
    from lunamatch import _rpc
    seen = []

    def config(self, url):
        seen.append(self.settings(url)["server_name"])
        return _rpc.pynng.TLSConfig(_rpc.pynng.TLSConfig.MODE_CLIENT,
                                    auth_mode=_rpc.pynng.TLSConfig.AUTH_MODE_NONE)

    monkeypatch.setattr(_rpc.TLSOptions, "config", config)
    with lunamatch.Client("tls+tcp://a.internal:1,tcp://127.0.0.1:1,tls+tcp://b.internal:1",
                          tls_ca=str(tls_certs / "ca.crt")):
        pass
    assert seen == ["a.internal", "b.internal"]


def test_tls_options_go_together():
    with pytest.raises(ValueError):
        lunamatch.Client("tls+tcp://localhost:1", tls_cert="client.crt")


#: The PEM file of each TLS option in tls_certs.
TLS_FILES = dict(tls_ca="ca.crt", tls_cert="client.crt", tls_key="client.key")


@pytest.mark.parametrize("option", ["tls_ca", "tls_cert", "tls_key"])
def test_a_tls_file_is_at_most_1_mib(tls_certs, tmp_path, option):
    """As in the C client (LM_RPC_MAX_PEM): a TLS file of 1 MiB is read, a
    larger one (a wrong path, a device) is a ValueError naming the file and
    the limit, without reading more than the limit."""
    limit = 1 << 20
    pem = (tls_certs / TLS_FILES[option]).read_text()
    at_limit = tmp_path / "at-limit.pem"
    at_limit.write_text("#" * (limit - len(pem) - 1) + "\n" + pem)  # text before a block is skipped
    assert at_limit.stat().st_size == limit
    over = tmp_path / "over.pem"
    over.write_text("#" + at_limit.read_text())
    files = {k: str(tls_certs / v) for k, v in TLS_FILES.items()}
    url = "tls+tcp://127.0.0.1:1"  # the files are read, not used
    with lunamatch.Client(url, **dict(files, **{option: str(at_limit)})):
        pass
    for bad in (str(over), "/dev/zero"):
        with pytest.raises(ValueError, match="%s file %s: larger than 1048576 bytes" % (
                option, bad)):
            lunamatch.Client(url, **dict(files, **{option: bad}))


def _corrupt(pem):
    """pem with the base64 of its first block's body replaced."""
    lines = pem.splitlines(keepends=True)
    return lines[0] + "QUJD" * 16 + "\n" + "".join(l for l in lines[1:] if l.startswith("-----"))


#: Bad TLS file contents (from the right file's text) and what the error says.
BAD_TLS_FILES = {
    "empty": (lambda pem: b"", "empty"),
    "not-utf8": (lambda pem: b"\xff\xfe" + pem.encode(), r"not UTF-8 text \(byte 0xff at offset 0\)"),
    "nul": (lambda pem: pem.encode()[:40] + b"\0" + pem.encode()[40:],
            r"not PEM text \(a NUL byte at offset 40\)"),
    "not-pem": (lambda pem: b"hello\n", "not PEM: no -----BEGIN "),
    "corrupt": (lambda pem: _corrupt(pem).encode(), "not a .* nng can use"),
}


@pytest.mark.parametrize("url", ["tls+tcp://127.0.0.1:1", "tcp://127.0.0.1:1,tls+tcp4://127.0.0.1:1"])
@pytest.mark.parametrize("bad", sorted(BAD_TLS_FILES))
@pytest.mark.parametrize("option", ["tls_ca", "tls_cert", "tls_key"])
def test_a_bad_tls_file_is_refused_naming_it(tls_certs, tmp_path, option, bad, url):
    """A TLS file that is empty, not UTF-8, not PEM text (as the C client's
    read_pem: a NUL byte), without a PEM block of its kind or whose block
    nng cannot use is a ValueError when the client is created, naming the
    option, the file and what is wrong, when one endpoint is a tls+ one."""
    files = {k: str(tls_certs / v) for k, v in TLS_FILES.items()}
    make, what = BAD_TLS_FILES[bad]
    path = tmp_path / ("bad-" + option)
    path.write_bytes(make((tls_certs / TLS_FILES[option]).read_text()))
    files[option] = str(path)
    with pytest.raises(ValueError, match="%s file %s: %s" % (option, path, what)):
        lunamatch.Client(url, **files)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
@pytest.mark.parametrize("missing", [True, False], ids=["missing", "directory"])
@pytest.mark.parametrize("option", ["tls_ca", "tls_cert", "tls_key"])
def test_a_tls_file_that_cannot_be_read_is_a_value_error(tls_certs, tmp_path, option,
                                                         missing, asynchronous):
    """A TLS file that does not exist, or is a directory, is a ValueError
    naming the option, the file and why, as the README promises; it was
    the FileNotFoundError or IsADirectoryError of open()."""
    files = {k: str(tls_certs / v) for k, v in TLS_FILES.items()}
    bad = tmp_path / "nonexistent.pem" if missing else tmp_path
    files[option] = str(bad)
    why = "No such file or directory" if missing else "Is a directory"
    cls = lunamatch.AsyncClient if asynchronous else lunamatch.Client
    with pytest.raises(ValueError, match="%s file %s: cannot be read: %s" % (
            option, re.escape(str(bad)), why)) as e:
        cls("tls+tcp://127.0.0.1:1", **files)
    assert type(e.value) is ValueError


@pytest.mark.parametrize("option, other", [("tls_ca", "tls_key"), ("tls_cert", "tls_key"),
                                           ("tls_key", "tls_cert")])
def test_a_tls_file_of_the_wrong_kind_is_refused(tls_certs, option, other):
    """A key given for a certificate, or a certificate for the key, is a
    ValueError naming the file and the PEM block it lacks."""
    files = {k: str(tls_certs / v) for k, v in TLS_FILES.items()}
    files[option] = files[other]
    kind = "PRIVATE KEY" if option == "tls_key" else "CERTIFICATE"
    with pytest.raises(ValueError, match="%s file %s: not PEM: no -----BEGIN .*%s----- "
                       % (option, files[option], kind)):
        lunamatch.Client("tls+tcp://127.0.0.1:1", **files)



@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
@pytest.mark.parametrize("given", [dict(tls_ca="ca"), dict(tls_cert="crt", tls_key="key"),
                                   dict(tls_ca="ca", tls_cert="crt", tls_key="key")],
                         ids=["ca", "cert", "all"])
def test_tls_files_without_a_tls_endpoint_are_not_read(tmp_path, caplog, given, asynchronous):
    """As in the C client, the TLS files are read only when an endpoint is
    a tls+tcp:// one; given with others, they are not used for them and a
    warning names each (client.tls.unused in the C client). Here they do
    not even exist: reading them would be a ValueError."""
    files = {k: str(tmp_path / ("missing." + v)) for k, v in given.items()}
    urls = ["tcp://127.0.0.1:1", "ipc://%s" % (tmp_path / "sock")]
    cls = lunamatch.AsyncClient if asynchronous else lunamatch.Client
    with caplog.at_level(logging.WARNING, logger="lunamatch"):
        c = cls(urls, **files)
    c.close()
    unused = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and r.name == "lunamatch.client"
              and "not a tls+tcp:// URL" in r.getMessage()]
    assert len(unused) == 2 and all(u in m for u, m in zip(urls, unused))
    # A tls+ endpoint among them: the files are read (and here refused).
    with pytest.raises(ValueError, match="cannot be read"):
        cls(urls + ["tls+tcp://127.0.0.1:1"], **files)


def test_no_warning_when_every_endpoint_is_tls(tls_certs, caplog):
    files = {k: str(tls_certs / v) for k, v in TLS_FILES.items()}
    with caplog.at_level(logging.WARNING, logger="lunamatch"):
        with lunamatch.Client("tls+tcp://127.0.0.1:1,tls+tcp6://[::1]:1", **files):
            pass
    assert not [r for r in caplog.records if "not a tls+tcp:// URL" in r.getMessage()]
