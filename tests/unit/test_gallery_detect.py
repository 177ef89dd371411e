"""gallery: image-link detection, URL refusal and IP address classification (no network)."""
import pytest

from daz.config import validate_plugin_config
from daz.cytube.events import parse_event
from daz.plugins.gallery.addresses import is_public, refusal
from daz.plugins.gallery.detect import candidate_urls, classify, first_image, host_matches
from daz.plugins.gallery.settings import GalleryConfig, parse_duration

# ------------------------------------------------------------------ addresses

@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"), ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade"), ("100.127.255.254", "carrier-grade"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "private"),
    ("192.0.2.1", "private"), ("198.18.0.1", "private"),
    # IPv6
    ("::1", "loopback"), ("::", "unspecified"),
    ("fe80::1", "link-local"), ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"), ("ff02::1", "multicast"),
    ("fd00:ec2::254", "metadata"),
    ("::ffff:127.0.0.1", "IPv4-mapped address of a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped address of a private"),
    ("::ffff:169.254.169.254", "IPv4-mapped address of a cloud metadata"),
    ("2002:7f00:1::1", "6to4 address of a loopback"),
    ("2002:c0a8:101::1", "6to4 address of a private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("64:ff9b::7f00:1", "NAT64 address of a loopback"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("::10.0.0.1", "IPv4-compatible address of a private"),
    ("2001:db8::1", "private"),
    ("[::1]", "loopback"),
    ("fe80::1%eth0", "scoped"),
])
def test_non_public_addresses_are_refused_with_the_reason(address, why):
    reason = refusal(address)
    assert reason is not None and why in reason, (address, reason)
    assert not is_public(address)


@pytest.mark.parametrize("address", [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34", "2002:5db8:d822::1", "64:ff9b::808:808",
])
def test_public_addresses_pass(address):
    assert refusal(address) is None, address


def test_a_name_is_not_an_address():
    assert "not an IP address" in refusal("example.com")


# ------------------------------------------------------------------ detection

def image(url, **kw):
    return classify(url, **kw).is_image


@pytest.mark.parametrize("url", [
    "https://example.com/cat.png", "http://example.com/a/b/DOG.JPG", "https://x.org/p.jpeg?x=1",
    "https://x.org/p.gif#frag", "https://x.org/p.webp", "https://i.imgur.com/abc123",
    "https://imgur.com/abc123", "https://media.discordapp.net/attachments/1/2/x",
    "https://pbs.twimg.com/media/Fabc?format=jpg&name=large", "https://cdn.example/i?format=png",
    "https://sub.i.ibb.co/x", "https://example.com:443/a.png",
])
def test_image_links_are_recognised(url):
    assert image(url), classify(url)


@pytest.mark.parametrize("url, why", [
    ("https://notimgur.com.example/abc", "no image extension"),
    ("https://imgur.com.evil.example/abc", "no image extension"),
    ("https://evilimgur.com/abc", "no image extension"),
    ("https://example.com/video.webm", "no image extension"),
    ("https://example.com/page.html", "no image extension"),
    ("https://pbs.twimg.com/profile/x", "not /media/"),
    ("ftp://example.com/a.png", None), ("javascript:alert(1)//a.png", None),
    ("http://user:pw@example.com/a.png", "credentials"),
    ("http://example.com:8080/a.png", "port 8080"),
    ("http://127.0.0.1/a.png", "loopback"), ("http://10.0.0.1/a.png", "private"),
    ("http://169.254.169.254/latest/meta-data/a.png", "metadata"),
    ("http://[::1]/a.png", "loopback"), ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
    ("http://localhost/a.png", "not a public host name"),
    ("http://printer.local/a.png", "local host name"),
    ("http://foo.localhost/a.png", "local host name"),
    ("http://intranet/a.png", "not a public host name"),
    ("http://2130706433/a.png", "not a public host name"),
    ("https://example.com/" + "a" * 2100 + ".png", "2048"),
    ("https://example.com/a\x00.png", "control"),
])
def test_non_image_or_unsafe_links_are_refused(url, why):
    verdict = classify(url)
    assert not verdict.is_image
    if why:
        assert why in verdict.why, verdict


def test_host_matching_is_exact_or_subdomain_never_substring():
    assert host_matches("i.imgur.com", ["imgur.com"])
    assert host_matches("IMGUR.COM.", ["imgur.com"])
    assert not host_matches("notimgur.com", ["imgur.com"])
    assert not host_matches("imgur.com.evil.example", ["imgur.com"])


def test_unsafe_allow_hosts_lets_exactly_the_listed_host_and_port_through():
    allow = ("127.0.0.1:8123",)
    assert image("http://127.0.0.1:8123/a.png", unsafe_allow=allow)
    assert not image("http://127.0.0.1:8124/a.png", unsafe_allow=allow)
    assert not image("http://localhost:8123/a.png", unsafe_allow=allow)
    assert image("http://[::1]/a.png", unsafe_allow=("[::1]",))
    assert not image("http://[::1]:9999/a.png", unsafe_allow=("[::1]",))  # port not allowed


def test_urls_come_from_hrefs_and_text_in_order_without_duplicates():
    ev = parse_event("chatMsg", {
        "username": "alice", "time": 1, "meta": {},
        "msg": 'look <a href="https://a.example/one.png" target="_blank">https://a.example/one.png'
               '</a> and <a href="https://b.example/two.png?x=1&amp;y=2">https://b.example/two.png'
               '?x=1&amp;y=2</a>'}, room_id="r", channel="c")
    assert candidate_urls(ev.text, ev.msg) == ["https://a.example/one.png",
                                               "https://b.example/two.png?x=1&y=2"]
    assert first_image(ev.text, ev.msg).url == "https://a.example/one.png"


def test_trailing_punctuation_is_trimmed_and_only_the_first_image_counts():
    text = "see (https://x.example/a.png), https://x.example/b.png!"
    assert candidate_urls(text) == ["https://x.example/a.png", "https://x.example/b.png"]
    assert first_image("no links at all") is None
    assert first_image("https://x.example/page then https://y.example/pic.gif").url == \
        "https://y.example/pic.gif"


def test_hostile_and_huge_text_is_handled():
    assert first_image("<script>" * 1000 + "\x00" * 1000) is None
    assert first_image("x" * 100_000 + " https://x.example/a.png").url == "https://x.example/a.png"


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("value, seconds", [
    (300, 300), ("300", 300), ("5m", 300), ("6h", 21600), ("1h30m", 5400), ("90s", 90),
    ("2d", 172800), (" 30M ", 1800), (12.5, 12.5)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "abc", "", "5m x", "m5", True, None, [1]])
def test_bad_durations_are_errors(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, -5, 3, "0s", "nan", "inf", "5x"])
def test_the_interval_is_validated_with_a_clear_error(value):
    from daz.config import ConfigError, validate_plugin_config

    with pytest.raises(ConfigError) as err:
        validate_plugin_config("gallery", GalleryConfig, {"health_check_interval": value})
    assert "plugins.gallery.health_check_interval" in str(err.value)


def test_config_defaults_and_go_keys():
    # Go's keys are accepted (GO_COMPAT_KEYS) where the config is loaded, and left out there.
    cfg = validate_plugin_config("gallery", GalleryConfig,
                                 {"health_check_interval": "6h", "generate_html": True,
                                  "html_output_path": "./data/galleries"})
    assert cfg.health_check_interval == 21600
    assert cfg.max_images_per_user == 25 and cfg.allowed_ports == [80, 443]
    assert cfg.unsafe_allow_hosts == []
    assert not cfg.model_extra
