"""What runs on this machine: `promptlift memory calibrate` (every trainer's step at real size, the memory model's
measured points) and `promptlift memory check` (one step of every trainer and the lifted generation on this device,
each peak beside the memory model's projection). Both build full-size random pipelines and train on world renders,
so they sit above the world in the layers."""
