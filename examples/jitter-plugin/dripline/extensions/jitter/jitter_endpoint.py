"""JitterEntity: a KeyValueStore whose readings carry a random, reproducible offset."""
import random
import sys

from dripline.core.calibrate import calibrate
from dripline.implementations import KeyValueStore

__all__ = []

__all__.append("JitterEntity")


class JitterEntity(KeyValueStore):
    """Stores a value like KeyValueStore; a get returns value * (1 + jitter_fraction * r), with r
    drawn uniformly from [0, 1).

    Each entity has its own random generator, so two jitter endpoints in one service do not disturb
    each other's sequence, and the same seed always gives the same sequence of readings.
    """

    def __init__(self, jitter_fraction=0.1, seed=None, **kwargs):
        """
        Args:
            jitter_fraction (number): scale of the random offset, relative to the stored value
            seed (int or None): seed of the random generator; None draws one
        """
        KeyValueStore.__init__(self, **kwargs)
        self._jitter_fraction = jitter_fraction
        self._random = random.Random()
        self._seed = None
        self.update_seed(seed)

    @calibrate()
    def on_get(self):
        return self._value * (1 + self._jitter_fraction * self._random.random())

    @property
    def seed(self):
        """The seed in use; setting it (``dl-agent set peaches -s seed 7``) restarts the sequence."""
        return self._seed

    @seed.setter
    def seed(self, new_seed=None):
        self.update_seed(new_seed)

    def update_seed(self, new_seed=None):
        """Re-seed the random generator with `new_seed`, or with a fresh random seed when None.

        Any method can be called as a cmd: ``dl-agent cmd peaches -s update_seed 42``.
        """
        if new_seed is None:
            new_seed = random.randrange(sys.maxsize)
        self._seed = new_seed
        self._random.seed(new_seed)
        return self._seed
