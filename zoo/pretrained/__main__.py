"""``python -m zoo.pretrained``: list the registry, export a checkpoint into it."""

from zoo.pretrained.publish import main

if __name__ == "__main__":
    main()
