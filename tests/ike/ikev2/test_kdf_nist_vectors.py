"""All 900 NIST CAVS 17.3 IKEv2 KDF known answers.

Source: NIST CAVP, SP 800-135 IKEv2 component test vectors ("ikev2.fax", CAVS 17.3, generated
2015-02-09), as shipped in NSS's tests/fips/cavs_samples/IKE/fax/ikev2.fax; read from
../shared/vectors/cavs-ikev2-kdf.fax.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ike.constants import PrfId
from ike.crypto import PRF_ALGS, child_keymat, prf_plus, rekey_skeyseed, skeyseed

FAX = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / "cavs-ikev2-kdf.fax"
PRFS = {
    "SHA-1": PRF_ALGS[PrfId.PRF_HMAC_SHA1],
    "SHA-256": PRF_ALGS[PrfId.PRF_HMAC_SHA2_256],
    "SHA-384": PRF_ALGS[PrfId.PRF_HMAC_SHA2_384],
    "SHA-512": PRF_ALGS[PrfId.PRF_HMAC_SHA2_512],
}


def _cases() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = []
    section: dict[str, str] = {}
    current: dict[str, str] | None = None
    for raw in FAX.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            inner = line.strip("[]")
            if "=" in inner:
                k, v = (s.strip() for s in inner.split("=", 1))
                section[k] = v
            else:
                section["hash"] = inner
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        if k == "COUNT":
            current = dict(section)
            cases.append(current)
        assert current is not None
        current[k] = v
    return cases


@pytest.fixture(scope="module")
def cases() -> list[dict[str, str]]:
    if not FAX.exists():
        pytest.skip(f"shared vectors not present at {FAX} (plain clone without ../shared)")
    return _cases()


def test_all_900_cases(cases: list[dict[str, str]]) -> None:
    assert len(cases) == 900
    seen_hashes = set()
    for c in cases:
        prf = PRFS[c["hash"]]
        seen_hashes.add(c["hash"])
        ni, nr = bytes.fromhex(c["Ni"]), bytes.fromhex(c["Nr"])
        g_ir, g_ir_new = bytes.fromhex(c["g^ir"]), bytes.fromhex(c["g^ir (new)"])
        spi_i, spi_r = bytes.fromhex(c["SPIi"]), bytes.fromhex(c["SPIr"])
        dkm_len = int(c["DKM length"]) // 8
        child_len = int(c["Child SA DKM length"]) // 8
        seed = skeyseed(prf, ni, nr, g_ir)
        assert seed.hex() == c["SKEYSEED"], c["COUNT"]
        dkm = prf_plus(prf, seed, ni + nr + spi_i + spi_r, dkm_len)
        assert dkm.hex() == c["DKM"]
        sk_d = dkm[: prf.output_len]
        assert child_keymat(prf, sk_d, ni, nr, child_len).hex() == c["DKM(Child SA)"]
        assert child_keymat(prf, sk_d, ni, nr, child_len, g_ir_new).hex() == c["DKM(Child SA D-H)"]
        assert rekey_skeyseed(prf, sk_d, g_ir_new, ni, nr).hex() == c["SKEYSEED(Rekey)"]
    assert seen_hashes == set(PRFS)


def test_a_wrong_key_is_noticed(cases: list[dict[str, str]]) -> None:
    c = cases[0]
    prf = PRFS[c["hash"]]
    seed = skeyseed(prf, bytes.fromhex(c["Nr"]), bytes.fromhex(c["Ni"]), bytes.fromhex(c["g^ir"]))
    assert seed.hex() != c["SKEYSEED"]
