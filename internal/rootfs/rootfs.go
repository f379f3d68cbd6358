// Package rootfs writes the root filesystem, as a tar archive, of an image
// that runs one program: the executable itself and, when it is dynamically
// linked, its program interpreter (the dynamic loader named by PT_INTERP)
// and every shared library it needs, transitively, found the way the glibc
// loader finds them on this host (DT_RPATH, DT_RUNPATH, /etc/ld.so.cache,
// the default directories), each written at the path the loader looks it
// up by, symlinks resolved to the files they name.
//
// The archive is deterministic: entries sorted by path, owned by 0:0, with
// a fixed modification time, so that the same inputs give the same bytes
// and thus the same layer digest in the engine (which is how the image is
// recognised later, see backend's copier image).
//
// Paths in the image are slash-separated and relative to its root
// ("copier", "lib/x86_64-linux-gnu/libc.so.6").
package rootfs

import (
	"archive/tar"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// modTime is the modification time of every entry of the archive.
var modTime = time.Unix(0, 0).UTC()

// Layout is what goes into the image: files copied from the host, empty
// directories, and the library directories the loader inside the image
// would not search by itself.
type Layout struct {
	// Files maps a path in the image to the host file whose contents it
	// gets (symlinks already resolved).
	Files map[string]string
	// Dirs are directories to create in the image (empty ones included);
	// the parents of every file are created anyway, mode 0755.
	Dirs []string
	// LibraryPath lists the directories of the image, absolute, holding
	// libraries that the loader would not find there by its default
	// search (found on the host through ld.so.cache or a RUNPATH with
	// $ORIGIN): the image's LD_LIBRARY_PATH, empty when none is needed.
	LibraryPath []string
	// Dynamic says whether the executable is dynamically linked.
	Dynamic bool
}

// For returns the layout of an image running the executable exe, placed
// at name in the image (e.g. "copier"), with everything it needs to start.
// Libraries are looked up on this host, under its root directory "/".
func For(exe, name string) (*Layout, error) {
	return forRoot("/", exe, name)
}

// CheckExecutable fails, saying why in one line, unless exe is an ELF
// executable (what [For] checks first).
func CheckExecutable(exe string) error {
	_, f, err := openExecutable(exe)
	if err == nil {
		_ = f.Close()
	}
	return err
}

// openExecutable opens the ELF file exe (symbolic links followed) and
// returns its real path.
func openExecutable(exe string) (string, *elf.File, error) {
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return "", nil, fmt.Errorf("cannot read the executable: %w", err)
	}
	f, err := elf.Open(real)
	if err != nil {
		return "", nil, fmt.Errorf("%s is not a Linux executable: %v", exe, oneLine(err))
	}
	return real, f, nil
}

// forRoot is [For] with the host's library directories and ld.so.cache
// looked up under root (tests use a fake tree).
func forRoot(root, exe, name string) (*Layout, error) {
	l := &Layout{Files: map[string]string{}}
	real, f, err := openExecutable(exe)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	l.Files[clean(name)] = real
	interp, err := interpreter(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	if interp == "" {
		return l, nil
	}
	l.Dynamic = true
	r := &resolver{root: root, class: f.Class, machine: f.Machine, l: l, loaded: map[string]bool{}, libDirs: map[string]bool{}}
	hostInterp, err := r.hostFile(interp)
	if err != nil {
		return nil, fmt.Errorf("%s: its program interpreter %s: %w", exe, interp, err)
	}
	l.Files[clean(interp)] = hostInterp
	if err := r.object(f, real, path.Join("/", clean(name)), nil); err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	for d := range r.libDirs {
		if !slices.Contains(r.defaultDirs(), d) {
			l.LibraryPath = append(l.LibraryPath, d)
		}
	}
	slices.Sort(l.LibraryPath)
	return l, nil
}

// interpreter returns the PT_INTERP path of f, or "" when it has none.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			return "", fmt.Errorf("cannot read its program interpreter: %v", err)
		}
		return strings.TrimRight(string(data), "\x00"), nil
	}
	return "", nil
}

// resolver finds the shared libraries of one executable.
type resolver struct {
	root    string // the host's root directory
	class   elf.Class
	machine elf.Machine
	l       *Layout
	loaded  map[string]bool // sonames and names already resolved
	libDirs map[string]bool // image directories holding libraries
	cache   map[string][]string
	cacheOK bool
}

// object adds the libraries that the ELF object f (at host path hostPath,
// named imagePath in errors) needs, and theirs. rpaths are the DT_RPATH lists
// of the objects that loaded it, which the loader searches too when the
// object has no DT_RUNPATH.
func (r *resolver) object(f *elf.File, hostPath, imagePath string, rpaths []string) error {
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return fmt.Errorf("cannot read the libraries %s needs: %v", imagePath, err)
	}
	hostOrigin := "/"
	if rel, err := filepath.Rel(r.root, filepath.Dir(hostPath)); err == nil {
		hostOrigin = path.Join("/", filepath.ToSlash(rel))
	}
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	rpath, _ := f.DynString(elf.DT_RPATH)
	var ownRpath []string
	for _, s := range rpath {
		ownRpath = append(ownRpath, expandList(s, hostOrigin)...)
	}
	var run []string
	for _, s := range runpath {
		run = append(run, expandList(s, hostOrigin)...)
	}
	// DT_RPATH of this object and its loaders, only without DT_RUNPATH
	var searchRpath []string
	if len(runpath) == 0 {
		searchRpath = append(slices.Clone(ownRpath), rpaths...)
	}
	for _, name := range needed {
		if r.loaded[name] {
			continue
		}
		r.loaded[name] = true
		hostLib, imageLib, err := r.find(name, searchRpath, run)
		if err != nil {
			return err
		}
		lf, err := elf.Open(hostLib)
		if err != nil {
			return fmt.Errorf("library %s (%s): %v", name, hostLib, oneLine(err))
		}
		if soname, _ := lf.DynString(elf.DT_SONAME); len(soname) == 1 {
			r.loaded[soname[0]] = true
		}
		r.l.Files[clean(imageLib)] = hostLib
		r.libDirs[path.Dir(imageLib)] = true
		err = r.object(lf, hostLib, imageLib, append(ownRpath, rpaths...))
		_ = lf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// find looks the library name up as the loader does: a name with a slash
// is a path; otherwise DT_RPATH, DT_RUNPATH, ld.so.cache, then the default
// directories. It returns the host file (symlinks resolved) and the path
// it gets in the image.
func (r *resolver) find(name string, rpath, runpath []string) (string, string, error) {
	if strings.Contains(name, "/") {
		host, err := r.hostFile(name)
		if err != nil {
			return "", "", fmt.Errorf("cannot find library %s: %w", name, err)
		}
		return host, name, nil
	}
	try := func(dir, hostDir string) (string, string, bool) {
		p := path.Join(dir, name)
		host := filepath.Join(hostDir, name)
		if hostDir == "" {
			host = filepath.Join(r.root, filepath.FromSlash(p))
		}
		if real, ok := r.compatible(host); ok {
			return real, p, true
		}
		return "", "", false
	}
	for _, d := range append(slices.Clone(rpath), runpath...) {
		if h, p, ok := try(d, ""); ok {
			return h, p, nil
		}
	}
	for _, p := range r.cached(name) {
		if real, ok := r.compatible(filepath.Join(r.root, filepath.FromSlash(p))); ok {
			return real, p, nil
		}
	}
	for _, d := range r.defaultDirs() {
		if h, p, ok := try(d, ""); ok {
			return h, p, nil
		}
	}
	return "", "", fmt.Errorf("cannot find library %s: not in ld.so.cache nor in %s", name, strings.Join(r.defaultDirs(), ", "))
}

// hostFile resolves the image path p on the host to the regular file it
// names.
func (r *resolver) hostFile(p string) (string, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(r.root, filepath.FromSlash(p)))
	if err != nil {
		return "", errors.New("not found on this host")
	}
	if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	return real, nil
}

// compatible resolves host to a regular ELF file of the executable's class
// and machine, as the loader skips libraries of another architecture.
func (r *resolver) compatible(host string) (string, bool) {
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return "", false
	}
	f, err := elf.Open(real)
	if err != nil {
		return "", false
	}
	defer func() { _ = f.Close() }()
	return real, f.Class == r.class && f.Machine == r.machine
}

// defaultDirs are the directories the glibc loader searches last, in its
// order: the multiarch ones (Debian, Ubuntu) first.
func (r *resolver) defaultDirs() []string {
	var triplet string
	switch r.machine {
	case elf.EM_X86_64:
		triplet = "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		triplet = "aarch64-linux-gnu"
	case elf.EM_386:
		triplet = "i386-linux-gnu"
	case elf.EM_ARM:
		triplet = "arm-linux-gnueabihf"
	case elf.EM_RISCV:
		triplet = "riscv64-linux-gnu"
	case elf.EM_PPC64:
		triplet = "powerpc64le-linux-gnu"
	case elf.EM_S390:
		triplet = "s390x-linux-gnu"
	}
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	if r.class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// cached returns the paths ld.so.cache lists for name, in its order.
func (r *resolver) cached(name string) []string {
	if !r.cacheOK {
		r.cacheOK = true
		r.cache = readCache(filepath.Join(r.root, "etc", "ld.so.cache"))
	}
	return r.cache[name]
}

// readCache parses /etc/ld.so.cache (glibc's "glibc-ld.so.cache1.1"
// format, alone or after the old "ld.so-1.7.0" one) into name -> paths. A
// missing or unreadable cache is an empty one: the loader then falls back
// to its default directories, and so does [resolver.find].
func readCache(file string) map[string][]string {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	const (
		oldMagic = "ld.so-1.7.0"
		newMagic = "glibc-ld.so.cache1.1"
		newHead  = 48 // magic, version, nlibs, len_strings, flags, pad, extension_offset, unused[3]
		newEntry = 24 // flags, key, value, osversion, hwcap
		oldEntry = 12 // flags, key, value
	)
	start := 0
	if strings.HasPrefix(string(data), oldMagic) {
		if len(data) < 16 {
			return nil
		}
		n := int(binary.LittleEndian.Uint32(data[12:]))
		start = 16 + n*oldEntry
		start = (start + 7) &^ 7 // the new part is aligned
	}
	if start+newHead > len(data) || string(data[start:start+len(newMagic)]) != newMagic {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(data[start+20:]))
	str := func(off uint32) string {
		o := start + int(off)
		if o < 0 || o >= len(data) {
			return ""
		}
		end := strings.IndexByte(string(data[o:min(len(data), o+4096)]), 0)
		if end < 0 {
			return ""
		}
		return string(data[o : o+end])
	}
	out := map[string][]string{}
	for i := range n {
		e := start + newHead + i*newEntry
		if e+newEntry > len(data) {
			break
		}
		key, value := str(binary.LittleEndian.Uint32(data[e+4:])), str(binary.LittleEndian.Uint32(data[e+8:]))
		if key != "" && strings.HasPrefix(value, "/") {
			out[key] = append(out[key], value)
		}
	}
	return out
}

// expandList splits a DT_RPATH or DT_RUNPATH value into directories,
// expanding $ORIGIN to the directory the object really is in on the host
// (its neighbours are there); the image gets them at that same path, which
// then goes on [Layout.LibraryPath] as the image's loader would look
// elsewhere.
func expandList(s, hostOrigin string) []string {
	var out []string
	for _, d := range strings.Split(s, ":") {
		if d == "" {
			continue
		}
		d = strings.NewReplacer("${ORIGIN}", hostOrigin, "$ORIGIN", hostOrigin).Replace(d)
		out = append(out, path.Clean(filepath.ToSlash(d)))
	}
	return out
}

// WriteTar writes the layout as a tar archive to w: the directories (the
// given ones and every file's parents, mode 0755, "tmp" 01777 as usual),
// then the files (mode 0755), sorted by path; a host file that two paths
// name is written once and hard-linked from the other.
func (l *Layout) WriteTar(w io.Writer) error {
	dirs := map[string]os.FileMode{}
	addParents := func(p string) {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	for _, d := range l.Dirs {
		d = clean(d)
		dirs[d] = 0o755
		if d == "tmp" {
			dirs[d] = 0o1777
		}
		addParents(d)
	}
	for p := range l.Files {
		addParents(p)
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: int64(dirs[d]), ModTime: modTime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	files := make([]string, 0, len(l.Files))
	for p := range l.Files {
		files = append(files, p)
	}
	slices.Sort(files)
	written := map[string]string{} // host file -> its first image path
	for _, p := range files {
		host := l.Files[p]
		const mode = 0o755
		if first, ok := written[host]; ok {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: p, Linkname: first, Mode: mode, ModTime: modTime, Format: tar.FormatPAX}); err != nil {
				return err
			}
			continue
		}
		written[host] = p
		if err := writeFile(tw, p, host, mode); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeFile writes the host file as the regular file p of the archive.
func writeFile(tw *tar.Writer, p, host string, mode int64) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: fi.Size(), ModTime: modTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if n, err := io.Copy(tw, f); err != nil {
		return err
	} else if n != fi.Size() {
		return fmt.Errorf("%s changed while it was read", host)
	}
	return nil
}

// clean makes an image path relative to the image's root.
func clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
