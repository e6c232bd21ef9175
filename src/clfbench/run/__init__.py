"""Running a grid: `RunSpec` and grids (`config`), data and method for a run (`prepare`), one
run (`evaluate`) in a fresh process (`worker`), the grid with resume (`runner`), and where runs
compute (`executors`)."""
