import collections
import hashlib

from tfs2s.data.splits import hash_bucket, hashed_split


def test_bucket_is_the_first_four_sha256_bytes_of_seed_and_key_modulo_100():
    assert int.from_bytes(hashlib.sha256(b"1234:Go.").digest()[:4], "big") == 1961068491
    assert hash_bucket("Go.", 1234) == 91
    assert hash_bucket("I love you.", 1234) == 35
    assert hash_bucket("hello", 2024) == 0
    assert hash_bucket("24", 1234) == 0 and hash_bucket("24", 4321) == 8  # another seed, another bucket


def test_split_boundaries_test_first_then_validation():
    # Buckets 0, 3 and 2 under seed 1234: test < 2 <= validation < 4 <= train.
    assert [hashed_split(k, 1234, validation=2, test=2) for k in ("24", "51", "64", "Go.")] == [
        "test", "validation", "validation", "train"]
    assert hashed_split("24", 1234, validation=2, test=0) == "validation"  # no test split: bucket 0 validates
    counts = collections.Counter(hashed_split(str(i), 7, validation=10, test=5) for i in range(10000))
    assert counts == {"train": 8513, "validation": 968, "test": 519}
